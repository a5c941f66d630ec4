"""Stream operators, current_event, take(), through/echo, noack."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import fluvial as faust

from .conftest import eventually


def make_app(name: str, broker_url: str) -> faust.App:
    return faust.App(name, broker=broker_url, topic_partitions=2, broker_commit_interval=0.2)


async def test_operators(broker_url: str, unique: Callable[[str], str]) -> None:
    app = make_app(unique("ops"), broker_url)
    topic = app.topic(unique("numbers"), value_type=int, key_type=str, partitions=1)
    filtered: list[int] = []
    enumerated: list[tuple[int, int]] = []
    items: list[tuple[str, int]] = []
    events: list[tuple[str, int, int]] = []

    @app.agent(topic)
    async def evens(stream: faust.Stream[int]) -> None:
        async for value in stream.filter(lambda v: v % 2 == 0):
            filtered.append(value)

    @app.agent(topic)
    async def numbered(stream: faust.Stream[int]) -> None:
        async for index, value in stream.enumerate(start=1):
            enumerated.append((index, value))

    @app.agent(topic)
    async def keyed(stream: faust.Stream[int]) -> None:
        async for key, value in stream.items():
            items.append((key, value))
            event = faust.current_event()
            assert event is not None and event.value == value

    @app.agent(topic)
    async def raw_events(stream: faust.Stream[int]) -> None:
        async for event in stream.events():
            events.append((event.key, event.value, event.message.offset))

    async with app.running():
        for i in range(6):
            await topic.send(key=f"k{i}", value=i, partition=0)
        await eventually(lambda: len(events) == 6 and len(filtered) == 3
                         and len(enumerated) == 6 and len(items) == 6)
    assert filtered == [0, 2, 4]
    assert enumerated == [(i + 1, i) for i in range(6)]
    assert items == [(f"k{i}", i) for i in range(6)]
    assert events == [(f"k{i}", i, i) for i in range(6)]


async def test_through_and_echo(broker_url: str, unique: Callable[[str], str]) -> None:
    app = make_app(unique("thru"), broker_url)
    source = app.topic(unique("source"), value_type=int)
    middle = app.topic(unique("middle"), value_type=int)
    copy = app.topic(unique("copy"), value_type=int)
    after: list[int] = []
    copies: list[int] = []

    @app.agent(source)
    async def forward(stream: faust.Stream[int]) -> None:
        async for value in stream.echo(copy).through(middle):
            after.append(value)

    @app.agent(copy)
    async def read_copy(stream: faust.Stream[int]) -> None:
        async for value in stream:
            copies.append(value)

    async with app.running():
        for i in range(5):
            await source.send(value=i)
        await eventually(lambda: len(after) == 5 and len(copies) == 5)
    assert sorted(after) == list(range(5))
    assert sorted(copies) == list(range(5))


async def test_take_batches_and_within() -> None:
    """take() fills a batch up to max_, or yields what it has after ``within``."""
    from fluvial.testing.driver import TestDriver

    app = faust.App("take-app", topic_partitions=1)
    topic = app.topic("take-numbers", value_type=int, partitions=1)
    batches: list[list[int]] = []

    @app.agent(topic)
    async def batcher(stream: faust.Stream[int]) -> None:
        async for batch in stream.take(3, within=10):
            batches.append(batch)

    async with TestDriver(app) as driver:
        for i in range(7):
            await driver.send("take-numbers", value=i)
        await eventually(lambda: len(batches) == 2)
        assert batches == [[0, 1, 2], [3, 4, 5]]
        await driver.clock.advance(5)
        assert len(batches) == 2  # 6 is waiting for more, ``within`` not yet passed
        await driver.advance(6)
        assert batches == [[0, 1, 2], [3, 4, 5], [6]]


async def test_noack_stream_commits_only_what_is_acked() -> None:
    from fluvial.types import TP

    app = faust.App("noack-app", broker="memory://noack", topic_partitions=1,
                    broker_commit_interval=100)
    topic = app.topic("noack-numbers", value_type=int, partitions=1)
    held: list[Any] = []

    @app.agent(topic)
    async def manual(stream: faust.Stream[int]) -> None:
        async for event in stream.noack().events():
            held.append(event)

    async with app.running():
        for i in range(4):
            await topic.send(value=i)
        await eventually(lambda: len(held) == 4)
        await app.conductor.checkpoints.checkpoint()
        assert app.conductor.ctx.offsets.committed.get(TP("noack-numbers", 0)) is None
        held[0].ack()
        held[1].ack()
        await app.conductor.checkpoints.checkpoint()
        assert app.conductor.ctx.offsets.committed[TP("noack-numbers", 0)] == 2


async def test_channel_agents_in_memory() -> None:
    app = faust.App("channel-app", broker="memory://channels")
    channel = app.channel()
    got: list[str] = []

    @app.agent(channel)
    async def upper(stream: faust.Stream[str]) -> Any:
        async for value in stream:
            got.append(value.upper())
            yield value.upper()

    async with app.running():
        await upper.send(value="hi")
        await eventually(lambda: got == ["HI"])
        await asyncio.sleep(0)


async def test_events_discarded_at_a_revoke_never_reach_a_reading_stream() -> None:
    """A rebalance drops the queued events of revoked partitions; a stream already
    iterating the buffer must not process them anyway (their new owner does)."""
    from fluvial.buffers import EventBuffer
    from fluvial.streams import Stream
    from fluvial.types import TP, Message

    app = faust.App("discard-in-place", broker="memory://")
    for steps in ((), (("filter", lambda v: True, False),)):  # the fast path, and the other
        buffer = EventBuffer(100, ["t"])
        for offset in range(6):
            message = Message("t", offset % 2, offset, None, None, 0.0)
            message.decoded_key, message.decoded_value = None, offset
            message.hold()
            buffer.put(message)
        stream: Stream[int] = Stream(app.channel(), app=app, buffer=buffer, steps=steps)
        iterator = stream.__aiter__()
        seen = [await iterator.__anext__()]               # offset 0 (partition 0)
        dropped = buffer.discard({TP("t", 1)})            # the revoke
        assert sorted(m.offset for m in dropped) == [1, 3, 5]
        while buffer.items:
            seen.append(await iterator.__anext__())
        assert seen == [0, 2, 4], steps
        await iterator.aclose()
