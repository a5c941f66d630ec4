"""Checkpoint ordering under both guarantees.

At least once: the offsets a checkpoint commits are those processed when it
began, and it waits for the deliveries of what was sent before its mark — not
for later sends. Exactly-once: the checkpoint holds the fetch loop until the
actors finished the events they hold, and commits them in one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import fluvial as faust
from fluvial.buffers import EventBuffer
from fluvial.transport.memory import MemoryTransport
from fluvial.types import TP, Message

from .conftest import eventually
from .held import HeldProducer


async def test_at_least_once_commits_its_snapshot_once_what_preceded_its_mark_is_delivered(
    unique: Callable[[str], str],
) -> None:
    app = faust.App(unique("order"), broker=f"memory://{unique('broker')}")
    name = unique("in")
    source = app.topic(name, partitions=1, value_serializer="raw")
    conductor = app.conductor
    buffer = EventBuffer(100, [name])
    conductor.subscribe(source, buffer)
    transport = app.transport
    assert isinstance(transport, MemoryTransport)
    producer = HeldProducer(transport.create_producer(),
                            hold=lambda topic, value: value in (b"0", b"2"))
    await producer.start()
    await app.replace_producer(producer)
    await app.declare_topics([source])
    consumer = transport.create_consumer(app.conf.id)
    await consumer.start()
    tp = TP(name, 0)
    consumer.assign({tp: 0})
    ctx = conductor.ctx
    ctx.consumer, ctx.assignment = consumer, {tp}
    group = transport.broker.group(app.conf.id)

    def process(count: int) -> None:
        """An actor: each event sends its value on, then is acknowledged."""
        for _ in range(count):
            message = buffer.items.popleft()
            producer.send("out", None, message.value)
            assert message.release()

    conductor.dispatch([Message(name, 0, i, None, b"%d" % i, 0.0) for i in range(4)])
    process(2)                                   # events 0 and 1: the send of 0 is held
    first = asyncio.ensure_future(conductor.checkpoints.checkpoint())
    await eventually(lambda: producer.waiting == 1, message="the checkpoint waiting")
    process(2)                                   # events 2 and 3, after its mark: 2 is held
    producer.release(lambda value: value == b"0")
    await asyncio.wait_for(first, 5)             # not held up by the send of event 2
    assert group.committed[tp] == 2, "exactly the offsets processed when it began"
    assert producer.waited_for == [2]

    second = asyncio.ensure_future(conductor.checkpoints.checkpoint())
    await eventually(lambda: producer.waiting == 1, message="the next checkpoint waiting")
    await asyncio.sleep(0.05)
    assert not second.done() and group.committed[tp] == 2
    producer.release()
    await asyncio.wait_for(second, 5)
    assert group.committed[tp] == 4
    await consumer.stop()
    await producer.stop()


async def test_exactly_once_checkpoint_holds_the_fetch_loop_until_actors_finish(
    unique: Callable[[str], str],
) -> None:
    app = faust.App(unique("eos"), broker=f"memory://{unique('broker')}",
                    processing_guarantee="exactly_once", broker_commit_every=1,
                    broker_commit_interval=60)
    name = unique("in")
    source = app.topic(name, partitions=1, value_serializer="raw")
    gate = asyncio.Event()
    holding = asyncio.Event()
    seen: list[bytes] = []

    @app.agent(source)
    async def slow(stream: faust.Stream[bytes]) -> None:
        async for value in stream:
            if value == b"0":
                holding.set()
                await gate.wait()
            seen.append(value)

    transport = app.transport
    assert isinstance(transport, MemoryTransport)
    group = transport.broker.group(app.conf.id)
    tp = TP(name, 0)
    async with app.running():
        feed = transport.create_producer()   # not the worker's transactional producer
        await feed.start()
        await feed.send(name, None, b"0")
        conductor = app.conductor
        await asyncio.wait_for(holding.wait(), 10)   # an actor holds event 0
        await feed.send(name, None, b"1")
        # Each event fetched makes a checkpoint due; it waits for the actor.
        await eventually(lambda: conductor.events_received == 2, message="event 1 fetched")
        await eventually(lambda: conductor.checkpoints._lock.locked(),
                         message="the checkpoint quiescing")
        await feed.send(name, None, b"2")
        await asyncio.sleep(0.3)
        assert conductor.events_received == 2, "the fetch loop holds still meanwhile"
        assert group.committed.get(tp, 0) == 0
        gate.set()
        await eventually(lambda: seen == [b"0", b"1", b"2"], message="the rest processed")
        await eventually(lambda: group.committed.get(tp, 0) >= 1,
                         message="event 0 committed with its transaction")
        await feed.stop()
