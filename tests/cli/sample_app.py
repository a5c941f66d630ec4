"""A small app for the command-line tests (``-A tests.cli.sample_app:app``)."""

from __future__ import annotations

from typing import Any

import fluvial as faust
from fluvial.cli import AppCommand, option

app = faust.App("cli-sample", broker="memory://cli-sample", store="memory://")


class Greeting(faust.Record):
    """Somebody to greet, some number of times."""

    name: str
    times: int = 1


greetings = app.topic("greetings", value_type=Greeting, partitions=2)
counts = app.Table("greeting-counts", default=int, help="Greetings per name.")


@app.agent(greetings)
async def greet(stream: Any) -> None:
    """Count greetings per name."""
    async for greeting in stream:
        counts[greeting.name] += greeting.times


@app.agent(app.channel())
async def local_helper(stream: Any) -> None:
    async for _ in stream:
        pass


@app.command(option("--times", type=int, default=1, help="How many hellos."),
             option("--name", default="world"))
async def hello(self: AppCommand, times: int, name: str) -> None:
    """Say hello from the app."""
    for _ in range(times):
        self.say(f"hello {name} from {self.app.conf.id} via {self.app.conf.broker}")


@app.command()
def plain() -> None:
    """A synchronous command without self."""
    print("plain ran")


if __name__ == "__main__":
    app.main()
