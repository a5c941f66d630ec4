"""An app run as a worker subprocess by test_worker_process.py (configured by env)."""

import os

import fluvial as faust

app = faust.App(os.environ.get("TEST_APP_ID", "worker-app"), broker="kafka://localhost:1",
                broker_commit_interval=0.5)
topic = app.topic(os.environ.get("TEST_TOPIC", "worker-input"), value_type=int, partitions=2)
OUTPUT = os.environ.get("TEST_OUTPUT", os.devnull)
CRASH_ON = int(os.environ.get("TEST_CRASH_ON", "-1"))


@app.agent(topic, supervisor_strategy="stop")
async def record(values: faust.Stream[int]) -> None:
    with open(OUTPUT, "a") as out:
        async for value in values:
            if value == CRASH_ON:
                raise RuntimeError(f"crash on {value}")
            out.write(f"{value}\n")
            out.flush()


@app.task
async def feed() -> None:
    for i in range(int(os.environ.get("TEST_FEED", "0"))):
        await topic.send(value=i)


if __name__ == "__main__":
    app.main()
