"""A worker subprocess of test_leader.py: on_leader timer and task, writing to files.

Configured by environment: ``TEST_APP_ID``, ``TEST_OUT`` (a directory) and
``FLUVIAL_WEB_PORT`` (which names the worker, and makes its canonical URL).
"""

import os
import time
from pathlib import Path

import fluvial as faust

app = faust.App(os.environ.get("TEST_APP_ID", "leader-app"), broker="kafka://localhost:1",
                broker_session_timeout=6.0, broker_heartbeat_interval=1.0)
topic = app.topic(f"{app.conf.id}-input", value_type=int, partitions=3)
OUT = Path(os.environ.get("TEST_OUT", "."))
NAME = os.environ.get("FLUVIAL_WEB_PORT", "0")


def write(file: str, line: str) -> None:
    with open(OUT / file, "a") as out:
        out.write(line + "\n")


@app.agent(topic)
async def consume(values: faust.Stream[int]) -> None:
    async for _ in values:
        pass


@app.timer(0.2, on_leader=True)
async def tick() -> None:
    write("ticks", f"{NAME} {time.time()}")


@app.task(on_leader=True)
async def leader_task() -> None:
    write("tasks", f"{NAME} {time.time()}")


@app.timer(0.2)
async def report() -> None:
    # Replaced whole, so that the test never reads a half-written file.
    (OUT / f"leader-{NAME}.tmp").write_text("1" if app.is_leader() else "0")
    os.replace(OUT / f"leader-{NAME}.tmp", OUT / f"leader-{NAME}")


if __name__ == "__main__":
    app.main()
