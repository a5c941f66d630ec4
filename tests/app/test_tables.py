"""Tables: group_by + counting, changelogs, restore on restart, misuse errors."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import fluvial as faust
from fluvial.exceptions import TableError
from fluvial.transport.partitioner import partition_for_key

from .conftest import eventually


class Order(faust.Record, serializer="json"):
    account_id: str
    product_id: str
    amount: int
    price: float


def build(name: str, topic_name: str, broker_url: str) -> tuple[faust.App, Any, Any, list[str]]:
    app = faust.App(name, broker=broker_url, topic_partitions=4, broker_commit_interval=0.2)
    topic = app.topic(topic_name, value_type=Order, partitions=3)
    counts = app.Table("order_count", default=int)
    seen: list[str] = []

    @app.agent(topic)
    async def process(orders: faust.Stream[Order]) -> None:
        async for order in orders.group_by(Order.account_id):
            counts[order.account_id] += 1
            seen.append(order.account_id)

    return app, topic, counts, seen


async def test_group_by_counts_and_restore_after_restart(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    name, topic_name = unique("counter"), unique("orders")
    accounts = [f"acct-{i % 13}" for i in range(300)]
    expected = Counter(accounts)

    app, topic, counts, seen = build(name, topic_name, broker_url)
    async with app.running():
        for i, account in enumerate(accounts):
            await topic.send(value=Order(account_id=account, product_id=f"p{i}", amount=1,
                                         price=1.5))
        await eventually(lambda: len(seen) == len(accounts), message="all orders counted")
        assert dict(counts.items()) == dict(expected)
        # Each key lives in the partition its key hashes to (murmur2, as Kafka's
        # partitioner): the repartitioned stream and the table are co-partitioned.
        for partition in range(4):
            for key in counts.partition_data(partition) or {}:
                assert partition_for_key(key.encode(), 4) == partition
    # A new worker of the same app restores the table from its changelog.
    app2, topic2, counts2, seen2 = build(name, topic_name, broker_url)
    async with app2.running():
        await eventually(lambda: dict(counts2.items()) == dict(expected),
                         message="table restored from the changelog")
        assert seen2 == []  # nothing was re-processed: offsets were committed
        await topic2.send(value=Order(account_id="acct-0", product_id="x", amount=1, price=1.0))
        await eventually(lambda: counts2["acct-0"] == expected["acct-0"] + 1,
                         message="new event counted on top of the restored value")


async def test_changelog_uses_faust_encoding(broker_url: str,
                                             unique: Callable[[str], str]) -> None:
    """Keys and values of the changelog are JSON, as Faust writes them."""
    from fluvial.types import TP

    app, topic, counts, seen = build(unique("enc"), unique("orders"), broker_url)
    async with app.running():
        await topic.send(value=Order(account_id="alice", product_id="p", amount=1, price=1.0))
        await eventually(lambda: len(seen) == 1, message="one order")
        await app.conductor.checkpoints.checkpoint()
        changelog = counts.changelog_topic_name
        assert changelog == f"{app.conf.id}-order_count-changelog"
        consumer = app.transport.create_consumer(None)
        await consumer.start()
        try:
            consumer.assign({TP(changelog, p): 0 for p in range(4)})
            messages: list[Any] = []
            for _ in range(50):
                messages += await consumer.getmany(100, 0.2)
                if messages:
                    break
        finally:
            await consumer.stop()
    assert [(m.key, m.value) for m in messages] == [(b'"alice"', b"1")]


async def test_write_outside_stream_is_a_clear_error() -> None:
    app = faust.App("tables-misuse", broker="memory://")
    table = app.Table("t", default=int)
    with pytest.raises(TableError, match="outside of a stream"):
        table["k"] = 1
    assert table["missing"] == 0  # reads are allowed anywhere


async def test_use_partitioner_allows_writes_outside_streams() -> None:
    app = faust.App("tables-partitioner", broker="memory://", topic_partitions=4)
    table = app.Table("t", default=int, use_partitioner=True)
    table["k"] = 5
    assert table["k"] == 5
    assert len(table) == 1
    assert "k" in table
    assert "t" in table.as_ansitable()


async def test_changelog_with_wrong_partition_count_fails_fast(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    from fluvial.exceptions import PartitionCountMismatch
    from fluvial.types import TopicSpec

    app, _, counts, _ = build(unique("mismatch"), unique("orders"), broker_url)
    await app.transport.create_topics([TopicSpec(counts.changelog_topic_name, 2)])
    with pytest.raises(PartitionCountMismatch, match="has 2 partitions"):
        async with app.running():
            pass  # pragma: no cover - start-up must fail
    await app.close()


async def test_offsets_are_committed_while_busy(broker_url: str,
                                                unique: Callable[[str], str]) -> None:
    """Periodic checkpoints complete under sustained load (group_by keeps producing)."""
    from fluvial.types import TP

    app = faust.App(unique("busy"), broker=broker_url, topic_partitions=4,
                    broker_commit_interval=0.2, broker_commit_every=10**9)
    topic = app.topic(unique("orders"), value_type=Order, partitions=2)
    counts = app.Table("order_count", default=int)
    done = 0

    @app.agent(topic)
    async def process(orders: faust.Stream[Order]) -> None:
        nonlocal done
        async for order in orders.group_by(Order.account_id):
            counts[order.account_id] += 1
            done += 1

    async def feed() -> None:
        i = 0
        while True:
            for _ in range(200):
                topic.send_soon(value=Order(account_id=f"a{i % 50}", product_id="p",
                                            amount=1, price=1.0))
                i += 1
            await asyncio.sleep(0.001)

    async with app.running():
        feeder = asyncio.ensure_future(feed())
        try:
            name = topic.get_topic_name()
            tps = {TP(name, 0), TP(name, 1)}
            await eventually(lambda: done > 2000, message="events flowing")
            await eventually(
                lambda: sum(app.conductor.ctx.offsets.committed.get(tp, 0) for tp in tps) > 1000,
                message="offsets committed while the feed goes on",
            )
            assert not feeder.done()
        finally:
            feeder.cancel()


async def test_revoked_partitions_refuse_late_writes_and_dirty_ones_are_not_kept(
    unique: Callable[[str], str]
) -> None:
    """After a rebalance took a partition away, a write to it is not applied to a store
    the new owner never sees: refused from outside a stream, dropped (and counted)
    from a late event; a revoked partition with writes the changelog lacks is closed,
    not kept as a standby."""
    from fluvial.events import Current, _current_event
    from fluvial.exceptions import PartitionNotOwned
    from fluvial.types import TP, Message

    app = faust.App(unique("late-writes"), broker="memory://", topic_partitions=2,
                    table_standby_replicas=1)
    source = app.topic(unique("src"), partitions=2)
    table = app.Table("t", default=int, use_partitioner=True)
    keys = {partition_for_key(f"k{i}".encode(), 2): f"k{i}" for i in range(10)}

    @app.agent(source)
    async def idle(stream: faust.Stream[Any]) -> None:
        async for _ in stream:
            pass  # pragma: no cover - nothing is sent

    async with app.running():
        await eventually(lambda: len(app.conductor.assignment()) == 2, message="assigned")
        table[keys[0]] = 1
        table[keys[1]] = 1
        app.tables.flush_changelogs()  # partition 0 and 1 checkpointed...
        table[keys[1]] = 2              # ...then partition 1 written again
        await app.tables.on_partitions_revoked({TP(source.get_topic_name(), 0),
                                                TP(source.get_topic_name(), 1)})
        assert table.standby_data(0) is not None  # clean: kept as a standby
        assert table.standby_data(1) is None      # its last write is in no changelog
        # From a view or a timer: an error that says where the key belongs.
        for key in keys.values():
            with pytest.raises(PartitionNotOwned, match="belongs to another worker"):
                table[key] += 1
        # From an event whose partition was taken away: dropped, counted, logged.
        message = Message(source.get_topic_name(), 0, 0, None, None, 0.0)
        token = _current_event.set(Current(app, message))
        try:
            table[keys[0]] = 5
            table[keys[1]] += 1
        finally:
            _current_event.reset(token)
        assert table.writes_dropped == 2
        assert table.partitions_held() == []
        assert app.tables.flush_changelogs() == 0  # nothing to send for them
