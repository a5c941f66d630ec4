"""Agents on both transports: processing, commits, replies, sinks, crashes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

import fluvial as faust
from fluvial.exceptions import WorkerStopped
from fluvial.types import TP

from .conftest import eventually


class Order(faust.Record, serializer="json"):
    account_id: str
    amount: int


def make_app(name: str, broker_url: str, **settings: Any) -> faust.App:
    settings.setdefault("topic_partitions", 4)
    settings.setdefault("broker_commit_interval", 0.2)
    return faust.App(name, broker=broker_url, **settings)


async def committed(app: faust.App, topic: str, partitions: int) -> dict[int, int | None]:
    consumer = app.transport.create_consumer(app.conf.id)
    await consumer.start()
    try:
        offsets = await consumer.committed([TP(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return {tp.partition: off for tp, off in offsets.items()}


async def test_agent_processes_every_event_and_commits(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    app = make_app(unique("app"), broker_url)
    topic = app.topic(unique("orders"), value_type=Order, partitions=4)
    seen: list[Order] = []

    @app.agent(topic)
    async def process(orders: faust.Stream[Order]) -> None:
        async for order in orders:
            seen.append(order)

    async with app.running():
        for i in range(200):
            await topic.send(key=f"k{i}".encode(), value=Order(account_id=f"a{i % 7}", amount=i))
        await eventually(lambda: len(seen) == 200, message="200 orders")
        await app.conductor.checkpoints.checkpoint()
    assert sorted(o.amount for o in seen) == list(range(200))
    assert all(isinstance(o, Order) for o in seen)
    offsets = await committed(app, topic.get_topic_name(), 4)
    assert sum(o or 0 for o in offsets.values()) == 200


async def test_yield_replies_go_to_sink_and_ask(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    app = make_app(unique("app"), broker_url)
    results: list[int] = []

    @app.agent(unique("doubles"))
    async def collect(values: faust.Stream[int]) -> None:
        async for value in values:
            results.append(value)

    @app.agent(unique("numbers"), sink=[collect])
    async def double(values: faust.Stream[int]) -> Any:
        async for value in values:
            yield value * 2

    async with app.running():
        for i in range(5):
            await double.send(value=i)
        await eventually(lambda: len(results) == 5, message="5 replies in the sink")
        assert sorted(results) == [0, 2, 4, 6, 8]
        assert await double.ask(21) == 42
        assert await double.join([1, 2, 3]) == [2, 4, 6]
        assert [r async for r in double.map([5, 6])] == [10, 12]
        assert await double.kvjoin([("a", 7), ("b", 8)]) == [14, 16]
        assert [r async for r in double.kvmap([("c", 9)])] == [18]


async def test_commit_waits_for_every_stream(broker_url: str,
                                             unique: Callable[[str], str]) -> None:
    """A message is committed only once every stream that received it processed it."""
    app = make_app(unique("app"), broker_url)
    topic = app.topic(unique("events"), value_type=int, partitions=1)
    gate = asyncio.Event()
    fast: list[int] = []
    slow: list[int] = []

    @app.agent(topic)
    async def quick(values: faust.Stream[int]) -> None:
        async for value in values:
            fast.append(value)

    @app.agent(topic)
    async def blocked(values: faust.Stream[int]) -> None:
        async for value in values:
            if value == 5:
                await gate.wait()
            slow.append(value)

    async with app.running():
        for i in range(10):
            await topic.send(value=i, partition=0)
        await eventually(lambda: len(fast) == 10 and len(slow) == 5, message="fast done")
        await app.conductor.checkpoints.checkpoint()
        assert (await committed(app, topic.get_topic_name(), 1))[0] == 5
        gate.set()
        await eventually(lambda: len(slow) == 10, message="slow done")
        await app.conductor.checkpoints.checkpoint()
        assert (await committed(app, topic.get_topic_name(), 1))[0] == 10


async def test_concurrency_processes_all(broker_url: str, unique: Callable[[str], str]) -> None:
    app = make_app(unique("app"), broker_url)
    topic = app.topic(unique("work"), value_type=int, partitions=2)
    done: list[int] = []
    active = 0
    peak = 0

    @app.agent(topic, concurrency=3)
    async def worker(values: faust.Stream[int]) -> None:
        nonlocal active, peak
        async for value in values:
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.001)
            active -= 1
            done.append(value)

    async with app.running():
        for i in range(60):
            await topic.send(value=i)
        await eventually(lambda: len(done) == 60, message="60 items")
        await app.conductor.checkpoints.checkpoint()
    assert sorted(done) == list(range(60))
    assert peak > 1
    offsets = await committed(app, topic.get_topic_name(), 2)
    assert sum(o or 0 for o in offsets.values()) == 60


async def test_crashing_agent_restarts_and_commits_go_on(
    broker_url: str, unique: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(unique("app"), broker_url)
    topic = app.topic(unique("crashy"), value_type=int, partitions=1)
    seen: list[int] = []

    @app.agent(topic)
    async def fragile(values: faust.Stream[int]) -> None:
        async for value in values:
            if value == 3:
                raise ValueError("bad value 3")
            seen.append(value)

    with caplog.at_level(logging.ERROR):
        async with app.running():
            for i in range(6):
                await topic.send(value=i, partition=0)
            await eventually(lambda: len(seen) == 5, message="events after the crash")
            await app.conductor.checkpoints.checkpoint()
            assert (await committed(app, topic.get_topic_name(), 1))[0] == 6
    assert seen == [0, 1, 2, 4, 5]
    assert fragile.crashes == 1
    crash_logs = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert crash_logs and crash_logs[0].exc_info is not None
    assert "@3" in crash_logs[0].getMessage()


async def test_crashing_group_by_agent_restarts_and_commits_go_on(
    broker_url: str, unique: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    """An actor that crashes inside a group_by loop restarts on the same repartition
    stream: the event it crashed on is acknowledged, the events queued behind it are
    processed, and every offset is committed (a restart used to subscribe a second
    stream beside the dead one, whose unacknowledged event stalled the commits)."""
    app = make_app(unique("app"), broker_url)
    topic = app.topic(unique("crashy"), value_type=int, partitions=1)
    seen: list[int] = []

    @app.agent(topic)
    async def fragile(values: faust.Stream[int]) -> None:
        async for value in values.group_by(lambda v: str(v % 2), name="parity"):
            if value in (3, 6):
                raise ValueError(f"bad value {value}")
            seen.append(value)

    with caplog.at_level(logging.ERROR):
        async with app.running():
            for i in range(10):
                await topic.send(value=i, partition=0)
            await eventually(lambda: len(seen) == 8, message="events after the crashes")
            await app.conductor.checkpoints.checkpoint()
            assert (await committed(app, topic.get_topic_name(), 1))[0] == 10
            agent = fragile.name.replace("<locals>", "_locals_")
            repartition = f"{agent}-{topic.get_topic_name()}-parity-repartition"
            offsets = await committed(app, repartition, 4)
            assert sum(o or 0 for o in offsets.values()) == 10, offsets
    assert sorted(seen) == [0, 1, 2, 4, 5, 7, 8, 9]
    assert fragile.crashes == 2
    crash_logs = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert "parity-repartition" in crash_logs[0].getMessage()  # where it crashed


async def test_crash_with_stop_strategy_stops_the_worker(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    app = make_app(unique("app"), broker_url)
    topic = app.topic(unique("fatal"), value_type=int, partitions=1)

    @app.agent(topic, supervisor_strategy="stop")
    async def fatal(values: faust.Stream[int]) -> None:
        async for value in values:
            raise RuntimeError(f"cannot handle {value}")

    async with app.running():
        await topic.send(value=1)
        with pytest.raises(WorkerStopped, match="cannot handle 1"):
            await asyncio.wait_for(app.wait_stopped(), 30)


async def test_isolated_partitions_rejected_with_concurrency() -> None:
    app = faust.App("x", broker="memory://")
    with pytest.raises(faust.exceptions.ImproperlyConfigured):

        @app.agent(app.topic("t"), concurrency=2, isolated_partitions=True)
        async def agent(stream: faust.Stream[Any]) -> None:  # pragma: no cover
            async for _ in stream:
                pass


async def test_isolated_partitions_one_actor_per_partition(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    app = make_app(unique("app"), broker_url)
    topic = app.topic(unique("isolated"), value_type=int, partitions=3)
    actor_of: dict[int, set[int]] = {}
    seen: list[int] = []

    @app.agent(topic, isolated_partitions=True)
    async def per_partition(values: faust.Stream[int]) -> None:
        async for value in values:
            event = faust.current_event()
            assert event is not None
            task = asyncio.current_task()
            actor_of.setdefault(event.message.partition, set()).add(id(task))
            seen.append(value)

    async with app.running():
        for i in range(30):
            await topic.send(value=i, partition=i % 3)
        await eventually(lambda: len(seen) == 30, message="30 events")
        await app.conductor.checkpoints.checkpoint()
    assert sorted(seen) == list(range(30))
    assert set(actor_of) == {0, 1, 2}
    assert all(len(tasks) == 1 for tasks in actor_of.values())
    assert len(set().union(*actor_of.values())) == 3
    offsets = await committed(app, topic.get_topic_name(), 3)
    assert offsets == {0: 10, 1: 10, 2: 10}


async def test_stop_mid_event_commits_only_processed_events(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    """Stopping while an event is in progress: it is not committed and runs again."""
    name, topic_name = unique("app"), unique("inflight")
    never = asyncio.Event()
    first_run: list[int] = []

    app = make_app(name, broker_url)
    topic = app.topic(topic_name, value_type=int, partitions=1)

    @app.agent(topic)
    async def slow(values: faust.Stream[int]) -> None:
        async for value in values:
            if value == 3:
                await never.wait()  # stuck here when the worker stops
            first_run.append(value)

    async with app.running():
        for i in range(6):
            await topic.send(value=i)
        await eventually(lambda: first_run == [0, 1, 2], message="events before the stuck one")
    assert (await committed(app, topic_name, 1))[0] == 3

    second_run: list[int] = []
    app2 = make_app(name, broker_url)
    topic2 = app2.topic(topic_name, value_type=int, partitions=1)

    @app2.agent(topic2)
    async def resume(values: faust.Stream[int]) -> None:
        async for value in values:
            second_run.append(value)

    async with app2.running():
        await eventually(lambda: second_run == [3, 4, 5], message="replay from the stuck event")


async def test_slow_agent_pauses_its_partitions_without_blocking_others(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    """Back-pressure: a stuck agent's buffer fills, its partitions pause, the others flow,
    and once it resumes nothing is missing."""
    app = make_app(unique("app"), broker_url, stream_buffer_maxsize=10)
    slow_topic = app.topic(unique("slow"), value_type=int, partitions=1)
    fast_topic = app.topic(unique("fast"), value_type=int, partitions=1)
    gate = asyncio.Event()
    slow_seen: list[int] = []
    fast_seen: list[int] = []

    @app.agent(slow_topic)
    async def slow(values: faust.Stream[int]) -> None:
        async for value in values:
            await gate.wait()
            slow_seen.append(value)

    @app.agent(fast_topic)
    async def fast(values: faust.Stream[int]) -> None:
        async for value in values:
            fast_seen.append(value)

    async with app.running():
        for i in range(100):
            await slow_topic.send(value=i)
        await eventually(lambda: bool(app.conductor.paused_topics()),
                         message="slow partitions paused")
        for i in range(100):
            await fast_topic.send(value=i)
        await eventually(lambda: len(fast_seen) == 100, message="fast agent unaffected")
        assert slow_seen == []
        gate.set()
        await eventually(lambda: len(slow_seen) == 100, message="slow agent catches up")
    assert slow_seen == list(range(100))
    assert fast_seen == list(range(100))


async def test_group_by_topics_are_named_as_faust_names_them(unique: Callable[[str], str]) -> None:
    """``{agent}-{source}-{field}-repartition`` (no app id), or ``topic=`` as given: a
    fluvial worker taking over from a Faust one reads what Faust left in them."""
    app = make_app(unique("app"), "memory://")
    orders = app.topic(unique("orders"), value_type=Order)
    given = app.topic(unique("by-amount"), value_type=Order)
    seen: list[str] = []

    @app.agent(orders)
    async def by_account(stream: faust.Stream[Order]) -> None:
        async for order in stream.group_by(Order.account_id):
            seen.append(f"account {order.account_id}")

    @app.agent(orders)
    async def by_amount(stream: faust.Stream[Order]) -> None:
        async for order in stream.group_by(Order.amount, topic=given):
            seen.append(f"amount {order.amount}")

    async with app.running():
        await orders.send(key="o1", value=Order(account_id="a1", amount=3))
        await eventually(lambda: len(seen) == 2, message="the order through both repartitions")
        names = app.conductor.topic_names
    # Named after the agent, module.qualname; Kafka refuses the ``<>`` of ``<locals>``.
    assert by_account.name == f"{__name__}.test_group_by_topics_are_named_as_faust_names_them" \
        ".<locals>.by_account"
    agent = by_account.name.replace("<locals>", "_locals_")
    assert f"{agent}-{orders.get_topic_name()}-Order.account_id-repartition" in names
    assert given.get_topic_name() in names
    assert not any("Order.amount" in name for name in names)
    assert sorted(seen) == ["account a1", "amount 3"]
