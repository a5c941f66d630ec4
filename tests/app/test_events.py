"""Events are made only where user code can see them: iterating values queues and
hands out the fetched messages themselves; ``current_event()``, ``stream.events()``
and the rest still give Faust's Event (one object per event, asked again or not)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import fluvial as faust
from fluvial.buffers import EventBuffer
from fluvial.events import Event
from fluvial.streams import Stream
from fluvial.types import TP, Message, SharedMessage

from .conftest import eventually


class Order(faust.Record):
    account: str
    amount: int


def live_events() -> list[Event]:
    gc.collect()  # an event another test made is kept alive by a cycle (it and its message)
    return [o for o in gc.get_objects() if type(o) is Event]


async def test_iterating_values_makes_no_event() -> None:
    app = faust.App("no-events", broker="memory://no-events")
    topic = app.topic("orders", value_type=Order, partitions=2)
    buffer = EventBuffer(100, ["orders"])
    app.conductor.subscribe(topic, buffer)
    fetched = [Message("orders", i % 2, i // 2, b"k%d" % i,
                       Order(account=f"a{i}", amount=i).dumps(), 0.0) for i in range(6)]
    app.conductor.dispatch(fetched)
    # The buffer holds the fetched messages themselves, decoded, with no Event.
    assert list(buffer.items) == fetched
    assert [m.decoded_value for m in buffer.items] == [Order(account=f"a{i}", amount=i)
                                                       for i in range(6)]
    assert all(m.event is None for m in fetched)

    stream: Stream[Order] = Stream(topic, app=app, buffer=buffer)
    iterator = stream.__aiter__()
    values = [await iterator.__anext__() for _ in range(6)]
    assert [v.amount for v in values] == list(range(6))
    assert all(m.event is None for m in fetched), "no Event was made for a value"
    assert live_events() == []
    # Each value was acknowledged when the next one was asked for: all but the last,
    # and let go (the tracker keeps the message until the offset is committed).
    assert [m.acked for m in fetched] == [True] * 5 + [False]
    assert [m.decoded_value for m in fetched[:5]] == [None] * 5

    # Asking for the event of the message in hand makes it, once.
    event = faust.current_event()
    assert event is not None and event is stream.current_event
    assert event.value is values[-1] and event.key == b"k5"
    assert faust.current_event() is event and live_events() == [event]
    assert fetched[5].event is None, "kept by the stream, not on the message (no cycle)"
    await iterator.aclose()


async def test_an_agent_iterating_values_makes_no_event(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    app = faust.App(unique("agent-no-events"), broker=broker_url, topic_partitions=2)
    topic = app.topic(unique("orders"), value_type=Order)
    seen: list[Order] = []
    events_meanwhile: list[int] = []

    @app.agent(topic)
    async def count(stream: faust.Stream[Order]) -> None:
        async for order in stream:
            seen.append(order)
            if len(seen) == 20:
                events_meanwhile.append(len(live_events()))

    async with app.running():
        for i in range(20):
            await topic.send(key=f"k{i}", value=Order(account=f"a{i}", amount=i))
        await eventually(lambda: len(events_meanwhile) == 1, message="20 orders")
    assert events_meanwhile == [0]
    assert sorted(o.amount for o in seen) == list(range(20))


async def test_current_event_is_faust_event(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    app = faust.App(unique("current"), broker=broker_url, topic_partitions=1)
    topic = app.topic(unique("in"), value_type=Order, key_type=str, partitions=1)
    out = app.topic(unique("out"), value_type=Order, key_type=str, partitions=1)
    checked: list[tuple[Any, ...]] = []
    forwarded: list[tuple[Any, ...]] = []

    @app.agent(topic)
    async def inspect(stream: faust.Stream[Order]) -> None:
        async for order in stream:
            event = faust.current_event()
            assert event is not None
            assert event is faust.current_event() is stream.current_event
            message = event.message
            checked.append((event.key, event.value is order, event.headers, message.topic,
                            message.partition, message.offset, message.timestamp > 0))
            await event.forward(out)

    @app.agent(out)
    async def receive(stream: faust.Stream[Order]) -> None:
        async for event in stream.events():
            forwarded.append((event.key, event.value.amount, event.headers))

    async with app.running():
        for i in range(3):
            await topic.send(key=f"k{i}", value=Order(account="a", amount=i),
                             headers=[("h", b"%d" % i)])
        await eventually(lambda: len(forwarded) == 3, message="forwarded events")
    assert checked == [(f"k{i}", True, [("h", b"%d" % i)], topic.get_topic_name(), 0, i, True)
                       for i in range(3)]
    assert forwarded == [(f"k{i}", i, [("h", b"%d" % i)]) for i in range(3)]


async def test_a_second_topic_object_decodes_with_its_own_schema() -> None:
    """Two Topic objects reading one topic (an Order, and raw bytes): each stream
    gets its own decoded value, and the offset is committable only once both
    are done with the message."""
    app = faust.App("two-schemas", broker="memory://two-schemas", broker_commit_interval=100)
    orders = app.topic("shared", value_type=Order, partitions=1)
    raw = app.topic("shared", value_serializer="raw", partitions=1)
    ordered, rawed = EventBuffer(100, ["shared"]), EventBuffer(100, ["shared"])
    app.conductor.subscribe(orders, ordered)
    app.conductor.subscribe(raw, rawed)
    payload = Order(account="a", amount=1).dumps()
    message = Message("shared", 0, 0, None, payload, 0.0)
    app.conductor.dispatch([message])
    first, second = ordered.items.popleft(), rawed.items.popleft()
    assert first is message and isinstance(second, SharedMessage)
    assert first.decoded_value == Order(account="a", amount=1)
    assert second.decoded_value == payload and second.offset == 0
    assert not first.release(), "the raw stream still holds it"
    assert not message.acked
    assert second.release() and message.acked
    assert app.conductor.ctx.offsets.committable() == {TP("shared", 0): 1}
