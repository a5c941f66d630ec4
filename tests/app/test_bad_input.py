"""Undecodable messages: logged with topic/partition/offset, routed by policy, never lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

import fluvial as faust
from fluvial.exceptions import WorkerStopped
from fluvial.types import TP

from .conftest import eventually


class Reading(faust.Record, serializer="json"):
    sensor: str
    value: float


async def produce_raw(app: faust.App, topic: str, payloads: list[bytes]) -> None:
    await app.producer_ready()
    for payload in payloads:
        app.producer.send_soon(topic, None, payload, partition=0)
    await app.producer.flush()


GOOD = b'{"sensor": "s1", "value": 1.5}'
BAD = b'{"sensor": "s1", "val'


def make(name: str, topic_name: str, broker_url: str, policy: str
         ) -> tuple[faust.App, faust.Topic[Reading], list[Reading]]:
    app = faust.App(name, broker=broker_url, broker_commit_interval=0.2,
                    decode_error_policy=policy)
    topic = app.topic(topic_name, value_type=Reading, partitions=1)
    seen: list[Reading] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[Reading]) -> None:
        async for reading in stream:
            seen.append(reading)

    return app, topic, seen


async def test_skip_logs_where_and_goes_on(
    broker_url: str, unique: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    topic_name = unique("readings")
    app, _topic, seen = make(unique("skip"), topic_name, broker_url, "skip")
    with caplog.at_level(logging.ERROR):
        async with app.running():
            await produce_raw(app, topic_name, [GOOD, BAD, GOOD])
            await eventually(lambda: len(seen) == 2)
            await app.conductor.checkpoint()
            assert app.conductor.tracker.committed[TP(topic_name, 0)] == 3
    assert app.conductor.decode_errors == 1
    errors = [r.getMessage() for r in caplog.records if "Cannot decode" in r.getMessage()]
    assert errors and f"{topic_name}[0]@1" in errors[0] and "skip" in errors[0]


async def test_dead_letter_keeps_the_bytes(broker_url: str, unique: Callable[[str], str]) -> None:
    topic_name = unique("readings")
    app, _topic, seen = make(unique("dlq"), topic_name, broker_url, "dead_letter")
    dlq = app.conf.dead_letter_topic_name
    async with app.running():
        await produce_raw(app, topic_name, [BAD, GOOD])
        await eventually(lambda: len(seen) == 1)
        await app.conductor.checkpoint()
        consumer = app.transport.create_consumer(None)
        await consumer.start()
        try:
            consumer.assign({TP(dlq, p): 0 for p in range(app.conf.topic_partitions)})
            dead: list[faust.Message] = []
            for _ in range(100):
                dead += await consumer.getmany(10, 0.1)
                if dead:
                    break
        finally:
            await consumer.stop()
    assert [m.value for m in dead] == [BAD]
    headers = dict(dead[0].headers)
    assert headers["fluvial-source"] == f"{topic_name}[0]@0".encode()
    assert headers["fluvial-error"] != b""


async def test_stop_policy_stops_without_committing_past_it(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    topic_name = unique("readings")
    app, _topic, _seen = make(unique("stop"), topic_name, broker_url, "stop")
    async with app.running():
        await produce_raw(app, topic_name, [GOOD, BAD, GOOD])
        with pytest.raises(WorkerStopped, match=rf"{topic_name}\[0\]@1"):
            await asyncio.wait_for(app.wait_stopped(), 30)
        await app.conductor.checkpoint()
        assert app.conductor.tracker.committed.get(TP(topic_name, 0), 0) <= 1


async def test_per_topic_policy_overrides_the_app() -> None:
    app = faust.App("per-topic", broker="memory://per-topic", decode_error_policy="stop")
    topic = app.topic("readings", value_type=Reading, partitions=1, on_decode_error="skip")
    seen: list[Reading] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[Reading]) -> None:
        async for reading in stream:
            seen.append(reading)

    async with app.running():
        await produce_raw(app, "readings", [BAD, GOOD])
        await eventually(lambda: len(seen) == 1)
        assert app.fatal_error is None
