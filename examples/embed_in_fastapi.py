import fastapi

import fluvial as faust


class Click(faust.Record):
    page: str


app = faust.App('clicks', broker='kafka://localhost')
clicks = app.topic('clicks', value_type=Click)
clicks_per_page = app.Table('clicks_per_page', default=int)


@app.agent(clicks)
async def count(stream):
    async for click in stream.group_by(Click.page):
        clicks_per_page[click.page] += 1


# An existing FastAPI service runs the app in its lifespan: the agents and
# tables live in the service's event loop, and the app's views (built-in
# pages included) are mounted under /stream.
api = fastapi.FastAPI(lifespan=app.lifespan)
api.mount('/stream', app.web.asgi)


@api.post('/click/{page}')
async def click(page: str) -> dict[str, str]:
    await clicks.send(value=Click(page=page))
    return {'clicked': page}


@api.get('/clicks/{page}')
async def page_clicks(page: str) -> dict[str, int]:
    return {page: clicks_per_page[page]}

# Run with: uvicorn examples.embed_in_fastapi:api
