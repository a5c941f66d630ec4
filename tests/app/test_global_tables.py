"""GlobalTable with two workers: each writes the partitions it owns, and holds them all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fluvial as faust

from .conftest import eventually


def worker(name: str, broker_url: str, topic_name: str) -> tuple[faust.App, Any, Any, list[str]]:
    app = faust.App(name, broker=broker_url, topic_partitions=2, broker_commit_interval=0.2)
    topic = app.topic(topic_name, key_type=str, value_type=str, partitions=2)
    latest = app.GlobalTable("latest", partitions=2)
    handled: list[str] = []

    @app.agent(topic)
    async def remember(stream: faust.Stream[str]) -> None:
        async for key, value in stream.items():
            latest[key] = value
            handled.append(key)

    return app, topic, latest, handled


async def test_every_worker_holds_every_partition(broker_url: str,
                                                  unique: Callable[[str], str]) -> None:
    name, topic_name = unique("global"), unique("updates")
    app_a, topic, table_a, handled_a = worker(name, broker_url, topic_name)
    app_b, _, table_b, handled_b = worker(name, broker_url, topic_name)
    expected = {f"k{i}": f"v{i}" for i in range(20)}
    async with app_a.running(), app_b.running():
        # Both workers in the group: each owns one partition of the two.
        await eventually(lambda: len(app_a.conductor.assignment()) == 1
                         and len(app_b.conductor.assignment()) == 1,
                         message="the two workers share the partitions")
        for key, value in expected.items():
            await topic.send(key=key, value=value)
        await eventually(lambda: len(handled_a) + len(handled_b) == 20, message="all handled")
        assert handled_a and handled_b  # both did part of the work
        # ... and both hold every key, written by either.
        await eventually(lambda: dict(table_a.items()) == expected, message="worker A complete")
        await eventually(lambda: dict(table_b.items()) == expected, message="worker B complete")
        tailer = app_a.tables.global_tailer
        assert tailer is not None and tailer.applied > 0


async def test_takeover_keeps_the_tailed_partitions(broker_url: str,
                                                    unique: Callable[[str], str]) -> None:
    name, topic_name = unique("global"), unique("updates")
    app_a, topic, table_a, _ = worker(name, broker_url, topic_name)
    app_b, _, _, handled_b = worker(name, broker_url, topic_name)
    async with app_a.running():
        running_b = app_b.running()
        await running_b.__aenter__()
        try:
            await eventually(lambda: len(app_a.conductor.assignment()) == 1
                             and len(app_b.conductor.assignment()) == 1,
                             message="the two workers share the partitions")
            for i in range(10):
                await topic.send(key=f"k{i}", value="first")
            await eventually(lambda: len(table_a) == 10, message="A holds all ten keys")
        finally:
            await running_b.__aexit__(None, None, None)
        # B is gone: A owns both partitions, keeps what it tailed, and goes on writing.
        await eventually(lambda: len(app_a.conductor.assignment()) == 2, message="takeover")
        assert len(table_a) == 10
        for i in range(10):
            await topic.send(key=f"k{i}", value="second")
        await eventually(lambda: dict(table_a.items()) == {f"k{i}": "second" for i in range(10)},
                         message="A writes every partition now")
        assert handled_b  # B did take part before it left
