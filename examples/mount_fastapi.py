import fastapi

import fluvial as faust


class Reading(faust.Record):
    sensor: str
    celsius: float


app = faust.App('sensors', broker='kafka://localhost')
readings = app.topic('readings', key_type=str, value_type=Reading)
latest = app.Table('latest_reading', value_type=Reading)


@app.agent(readings)
async def keep_latest(stream):
    async for sensor, reading in stream.items():
        latest[sensor] = reading


# Any ASGI application (here FastAPI) is served by the worker under a prefix,
# beside the app's own views and the built-in pages.
api = fastapi.FastAPI()


@api.get('/sensors/{sensor}')
async def sensor_reading(sensor: str) -> dict[str, float]:
    reading = latest.get(sensor)
    if reading is None:
        raise fastapi.HTTPException(status_code=404, detail=f'no reading from {sensor}')
    return {'celsius': reading.celsius}


app.web.mount('/api', api)

if __name__ == '__main__':
    app.main()
