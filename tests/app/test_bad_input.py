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
            await app.conductor.checkpoints.checkpoint()
            assert app.conductor.ctx.offsets.committed[TP(topic_name, 0)] == 3
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
        await app.conductor.checkpoints.checkpoint()
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
        await app.conductor.checkpoints.checkpoint()
        assert app.conductor.ctx.offsets.committed.get(TP(topic_name, 0), 0) <= 1


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


# -- decoders that raise more than SerializationError ------------------------------

class _Asks:
    """Pickles as ``bytearray(1 << 62)``: 68 bytes that ask for 4 EiB."""

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return (bytearray, (1 << 62,))


def pickled(value: object) -> bytes:
    import base64
    import pickle

    return base64.b64encode(pickle.dumps(value))


async def test_a_pickle_asking_for_all_memory_is_a_decode_error(
    broker_url: str, unique: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    topic_name = unique("pickles")
    app = faust.App(unique("bomb"), broker=broker_url, broker_commit_interval=0.2,
                    decode_error_policy="skip")
    topic = app.topic(topic_name, value_serializer="pickle", partitions=1)
    seen: list[object] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[object]) -> None:
        async for value in stream:
            seen.append(value)

    bomb = pickled(_Asks())
    assert len(bomb) == 68
    with caplog.at_level(logging.ERROR):
        async with app.running():
            await produce_raw(app, topic_name, [pickled({"n": 1}), bomb, pickled({"n": 2})])
            await eventually(lambda: len(seen) == 2)
            await app.conductor.checkpoints.checkpoint()
            assert app.conductor.ctx.offsets.committed[TP(topic_name, 0)] == 3
            assert app.fatal_error is None
    assert seen == [{"n": 1}, {"n": 2}]
    errors = [r.getMessage() for r in caplog.records if "Cannot decode" in r.getMessage()]
    assert len(errors) == 1 and f"{topic_name}[0]@1" in errors[0]
    assert "bytearray(4611686018427387904)" in errors[0]


class _Exploding(faust.codecs.Codec):
    """A custom codec that runs out of memory on some payloads."""

    def _dumps(self, obj: object) -> bytes:
        return bytes(obj)  # type: ignore[call-overload]

    def _loads(self, data: bytes) -> object:
        if data.startswith(b"!"):
            raise MemoryError
        return data.decode()


async def test_any_exception_from_a_decoder_goes_by_the_policy() -> None:
    app = faust.App("exploding", broker="memory://exploding", decode_error_policy="skip")
    topic = app.topic("words", value_serializer=_Exploding(), partitions=1)
    seen: list[str] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[str]) -> None:
        async for word in stream:
            seen.append(word)

    async with app.running():
        await produce_raw(app, "words", [b"one", b"!boom", b"two"])
        await eventually(lambda: len(seen) == 2)
        assert app.fatal_error is None
    assert seen == ["one", "two"]
    assert app.conductor.decode_errors == 1


# -- the dead-letter path --------------------------------------------------------------


async def read_all(app: faust.App, topic: str, count: int) -> list[faust.Message]:
    consumer = app.transport.create_consumer(None)
    await consumer.start()
    found: list[faust.Message] = []
    try:
        consumer.assign({TP(topic, p): 0 for p in range(app.conf.topic_partitions)})
        for _ in range(300):
            found += await consumer.getmany(10, 0.1)
            if len(found) >= count:
                break
    finally:
        await consumer.stop()
    return found


async def test_dead_letter_header_is_bounded(broker_url: str, unique: Callable[[str], str]
                                             ) -> None:
    # float('xxx…') quotes the whole payload in its error: 600 kB of error text
    # beside a 600 kB value is more than a Kafka message may hold.
    topic_name = unique("numbers")
    app = faust.App(unique("dlq-big"), broker=broker_url, broker_commit_interval=0.2,
                    decode_error_policy="dead_letter")
    topic = app.topic(topic_name, value_type=float, partitions=1)
    seen: list[float] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[float]) -> None:
        async for number in stream:
            seen.append(number)

    big = b'"' + b"x" * 600_000 + b'"'
    async with app.running():
        await produce_raw(app, topic_name, [b"1", big, b"2"])
        await eventually(lambda: len(seen) == 2)
        await app.conductor.checkpoints.checkpoint()
        assert app.fatal_error is None
        assert app.conductor.ctx.offsets.committed[TP(topic_name, 0)] == 3
        [dead] = await read_all(app, app.conf.dead_letter_topic_name, 1)
    assert dead.value == big
    error = dict(dead.headers)["fluvial-error"]
    assert len(error) <= 8192
    assert error.startswith(b"cannot decode value as float") and error.endswith(b"bytes in all)")


@pytest.mark.kafka
async def test_a_message_that_cannot_be_dead_lettered_stops_the_worker(
    kafka_url: str, kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    # 1.2 MB: the topic takes it, the worker's producer (1 MB per message) refuses
    # to send it to the dead-letter topic.
    from confluent_kafka import Producer

    topic_name = unique("huge")
    app = faust.App(unique("dlq-fail"), broker=kafka_url, broker_commit_interval=0.2,
                    decode_error_policy="dead_letter")
    topic = app.topic(topic_name, value_type=Reading, partitions=1,
                      config={"max.message.bytes": "3000000"})
    seen: list[Reading] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[Reading]) -> None:
        async for reading in stream:
            seen.append(reading)

    async with app.running():
        producer = Producer({"bootstrap.servers": kafka_bootstrap,
                             "message.max.bytes": 3_000_000})
        for payload in (GOOD, b"{" + b" " * 1_200_000, GOOD):
            producer.produce(topic_name, payload, partition=0)
        assert producer.flush(30) == 0
        with pytest.raises(WorkerStopped, match=rf"{topic_name}\[0\]@1 not dead-lettered"):
            await asyncio.wait_for(app.wait_stopped(), 30)
        await app.conductor.checkpoints.checkpoint()
        assert app.conductor.ctx.offsets.committed.get(TP(topic_name, 0), 0) <= 1
    assert len(seen) == 1


# -- stop means stop -------------------------------------------------------------------


async def test_stop_policy_processes_nothing_after_the_bad_message(
    broker_url: str, unique: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    topic_name = unique("readings")
    app, _topic, seen = make(unique("stop-rest"), topic_name, broker_url, "stop")
    with caplog.at_level(logging.ERROR):
        async with app.running():
            # One batch: a good message, two bad ones, good ones after them.
            await produce_raw(app, topic_name, [GOOD, BAD, GOOD, BAD, GOOD])
            with pytest.raises(WorkerStopped, match=rf"{topic_name}\[0\]@1"):
                await asyncio.wait_for(app.wait_stopped(), 30)
            await asyncio.sleep(0.1)
            await app.conductor.checkpoints.checkpoint()
            assert app.conductor.ctx.offsets.committed.get(TP(topic_name, 0), 0) <= 1
    assert len(seen) == 1
    stopping = [r for r in caplog.records if "Stopping" in r.getMessage()]
    assert len(stopping) == 1
