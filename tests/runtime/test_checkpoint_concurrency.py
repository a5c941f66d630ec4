"""At least once, a checkpoint runs beside the fetch loop: events are fetched and
processed while it waits for deliveries, and the offsets it commits never run
ahead of what was delivered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import fluvial as faust
from fluvial.sensors import Sensor
from fluvial.transport.memory import MemoryTransport
from fluvial.types import TP

from .conftest import eventually
from .held import HeldProducer


async def test_events_are_processed_while_a_checkpoint_waits_for_a_held_delivery(
    unique: Callable[[str], str],
) -> None:
    app = faust.App(unique("held"), broker=f"memory://{unique('broker')}",
                    broker_commit_every=1, broker_commit_interval=0.05)
    source = app.topic(unique("in"), partitions=1, value_serializer="raw")
    out = app.topic(unique("out"), partitions=1, value_serializer="raw")
    seen: list[bytes] = []

    @app.agent(source)
    async def forward(stream: faust.Stream[bytes]) -> None:
        async for value in stream:
            await out.send(value=value)
            seen.append(value)

    transport = app.transport
    assert isinstance(transport, MemoryTransport)
    producer = HeldProducer(transport.create_producer(),
                            hold=lambda topic, value: topic == out.get_topic_name()
                            and value == b"5")
    await producer.start()
    await app.replace_producer(producer)
    group = transport.broker.group(app.conf.id)
    tp = TP(source.get_topic_name(), 0)

    async with app.running():
        for i in range(10):
            await source.send(value=b"%d" % i)
        await eventually(lambda: len(seen) == 10, message="the first ten events")
        # A checkpoint took offsets past event 5 and waits for its send's delivery.
        await eventually(lambda: producer.waiting > 0, message="a checkpoint waiting")
        assert group.committed.get(tp, 0) <= 5
        for i in range(10, 20):
            await source.send(value=b"%d" % i)
        await eventually(lambda: len(seen) == 20,
                         message="events processed while the checkpoint waits")
        assert producer.waiting > 0, "the checkpoint should still be waiting"
        # Nothing at or after the undelivered message's event is committed.
        assert group.committed.get(tp, 0) <= 5
        producer.release()
        await eventually(lambda: group.committed.get(tp, 0) == 20,
                         message="everything committed once delivered")
    delivered = sorted(int(m.value or b"") for m in transport.broker.messages(out.get_topic_name()))
    assert delivered == list(range(20))


class CheckpointWatch(Sensor):
    """Checks, as every checkpoint completes, that every event below a committed
    offset had its send delivered; notes events fetched during checkpoints."""

    def __init__(self, app: faust.App, sends: dict[TP, dict[int, asyncio.Future[Any]]]) -> None:
        self.app = app
        self.sends = sends
        self.violations: list[str] = []
        self.fetched_during: list[int] = []
        self.commits = 0

    def on_commit_initiated(self, consumer: Any) -> Any:
        return self.app.conductor.events_received

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        self.fetched_during.append(self.app.conductor.events_received - state)
        for tp, offset in self.app.conductor.ctx.offsets.committed.items():
            sends = self.sends.get(tp, {})
            self.commits += 1
            for source_offset, fut in sends.items():
                if source_offset < offset and not (fut.done() and fut.exception() is None):
                    self.violations.append(f"{tp} committed to {offset} but the send of "
                                           f"offset {source_offset} is not delivered")


@pytest.mark.kafka
async def test_on_kafka_commits_follow_deliveries_while_fetching_goes_on(
    kafka_bootstrap: str, unique: Callable[[str], str],
) -> None:
    """Real Kafka, the worker's producer lingering 500 ms (each delivery takes that
    long) and input arriving steadily from another producer: checkpoints overlap
    fetching, and no committed offset passes an undelivered send."""
    from confluent_kafka import Producer

    kafka_url = f"kafka://{kafka_bootstrap}"
    app = faust.App(unique("overlap"), broker=kafka_url, broker_commit_every=200,
                    broker_commit_interval=0.2, producer_linger_ms=500)
    source = app.topic(unique("in"), partitions=2, value_serializer="raw")
    out = app.topic(unique("out"), partitions=2, value_serializer="raw")
    sends: dict[TP, dict[int, asyncio.Future[Any]]] = {}
    total = 6000
    processed = 0

    @app.agent(source)
    async def forward(stream: faust.Stream[bytes]) -> None:
        nonlocal processed
        async for event in stream.events():
            fut = await out.send(value=event.value)
            sends.setdefault(event.message.tp, {})[event.message.offset] = fut
            processed += 1

    watch = CheckpointWatch(app, sends)
    app.sensors.add(watch)
    feed = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 0})
    async with app.running():
        await source.declare()
        # ~3 s of input, 200 events every 0.1 s: it keeps arriving while the
        # checkpoints (each at least one 500 ms linger long) wait.
        for i in range(total):
            feed.produce(source.get_topic_name(), b"%d" % i, partition=i % 2)
            if i % 200 == 199:
                feed.poll(0)
                await asyncio.sleep(0.1)
        assert await asyncio.to_thread(feed.flush, 30) == 0
        await eventually(lambda: processed == total, timeout=60, message="every event")
        await app.commit()
        committed = dict(app.conductor.ctx.offsets.committed)
    assert not watch.violations, watch.violations[:5]
    assert watch.commits > 0
    assert sum(committed.values()) == total
    assert max(watch.fetched_during) > 0, (
        "no events were fetched while a checkpoint waited for deliveries")
