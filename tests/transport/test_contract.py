"""The transport contract (``fluvial.types``): every transport passes these tests.

Each test runs on ``memory://`` and, with the ``kafka`` mark, on a real broker.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from fluvial.exceptions import PartitionCountMismatch
from fluvial.transport.partitioner import partition_for_key
from fluvial.types import TP, ProducerT, RebalanceCallback, TopicSpec, TransportT

from .conftest import Kit, by_partition, drain, poll_until

pytestmark = pytest.mark.timeout(120)


async def test_create_topics_and_partition_counts(transport: TransportT, kit: Kit) -> None:
    three, one = await kit.topics(3, 1)
    missing = kit.name("missing")

    counts = await transport.partition_counts([three, one, missing])
    assert counts == {three: 3, one: 1, missing: None}

    # Declaring an existing topic with its own count is a no-op.
    await transport.create_topics([TopicSpec(three, 3)])
    assert await transport.partition_counts([three]) == {three: 3}


async def test_partition_count_mismatch_names_topic_and_counts(
    transport: TransportT, kit: Kit
) -> None:
    (topic,) = await kit.topics(2)

    with pytest.raises(PartitionCountMismatch) as raised:
        await transport.create_topics([TopicSpec(topic, 3)])

    message = str(raised.value)
    assert topic in message
    assert "2" in message and "3" in message
    assert await transport.partition_counts([topic]) == {topic: 2}


async def test_round_trip_keeps_key_value_headers_and_timestamp(kit: Kit) -> None:
    (topic,) = await kit.topics(1)
    producer = await kit.producer()
    headers = [("trace", b"abc"), ("trace", b"def"), ("empty", b"")]

    before = time.time()
    await producer.send(topic, b"key", b"value", headers=headers, timestamp=1_700_000_000.123)
    await producer.send(topic, None, None)  # a tombstone without key, stamped now
    after = time.time()

    consumer = await kit.consumer()
    consumer.assign({TP(topic, 0): 0})
    first, second = await drain(consumer, 2)

    assert (first.topic, first.partition, first.offset) == (topic, 0, 0)
    assert (first.key, first.value) == (b"key", b"value")
    assert first.headers == headers
    assert first.timestamp == pytest.approx(1_700_000_000.123, abs=1e-6)
    assert (second.offset, second.key, second.value, second.headers) == (1, None, None, [])
    # Kafka keeps milliseconds, so allow one either side.
    assert before - 0.001 <= second.timestamp <= after + 0.001


async def test_send_soon_keeps_key_value_headers_and_timestamp(kit: Kit) -> None:
    (topic,) = await kit.topics(1)
    producer = await kit.producer()
    headers = [("trace", b"abc"), ("empty", b"")]

    producer.send_soon(topic, b"key", b"value", headers=headers, timestamp=1_700_000_000.123)
    producer.send_soon(topic, b"k2", b"v2", headers=None, timestamp=1_600_000_000.5)
    await producer.flush()

    consumer = await kit.consumer()
    consumer.assign({TP(topic, 0): 0})
    first, second = await drain(consumer, 2)
    assert (first.key, first.value, first.headers) == (b"key", b"value", headers)
    assert first.timestamp == pytest.approx(1_700_000_000.123, abs=1e-6)
    assert (second.key, second.value, second.headers) == (b"k2", b"v2", [])
    assert second.timestamp == pytest.approx(1_600_000_000.5, abs=1e-6)


async def test_keyed_messages_land_where_murmur2_puts_them(kit: Kit) -> None:
    (topic,) = await kit.topics(5)
    producer = await kit.producer()
    keys = [f"key-{i}".encode() for i in range(60)]

    for key in keys * 2:
        producer.send_soon(topic, key, b"v")
    await producer.flush()

    consumer = await kit.consumer()
    consumer.assign({TP(topic, p): 0 for p in range(5)})
    messages = await drain(consumer, len(keys) * 2)

    assert all(m.key is not None for m in messages)
    placement = {(m.key, m.partition) for m in messages}
    assert placement == {(key, partition_for_key(key, 5)) for key in keys}
    assert len({p for _, p in placement}) > 1  # 60 keys over 5 partitions spread out


async def test_send_future_resolves_with_record_metadata(kit: Kit) -> None:
    (topic,) = await kit.topics(2)
    producer = await kit.producer()

    futures = [
        producer.send(topic, None, b"%d" % i, partition=1, timestamp=1_600_000_000.5 + i)
        for i in range(3)
    ]
    results = await asyncio.gather(*futures)

    assert [(r.topic, r.partition, r.offset) for r in results] == [(topic, 1, i) for i in range(3)]
    assert [r.timestamp for r in results] == pytest.approx([1_600_000_000.5 + i for i in range(3)])


async def test_send_soon_batch_of_10k_arrives_complete_and_in_order(kit: Kit) -> None:
    (topic,) = await kit.topics(4)
    producer = await kit.producer()
    total = 10_000

    for i in range(total):
        producer.send_soon(topic, None, b"%d" % i, partition=i % 4)
    await producer.flush()

    consumer = await kit.consumer()
    tps = [TP(topic, p) for p in range(4)]
    # flush() means delivered: every message is visible before anyone reads.
    assert await consumer.end_offsets(tps) == dict.fromkeys(tps, total // 4)

    consumer.assign(dict.fromkeys(tps, 0))
    messages = await drain(consumer, total)

    assert len(messages) == total
    for tp, in_partition in by_partition(messages).items():
        assert [m.offset for m in in_partition] == list(range(total // 4))
        assert [int(m.value or b"") for m in in_partition] == list(range(tp.partition, total, 4))


async def test_commit_then_same_group_resumes_after_committed_offset(kit: Kit) -> None:
    (topic,) = await kit.topics(1)
    tp = TP(topic, 0)
    group = kit.name("group")
    await kit.fill(topic, 10)

    first = await kit.consumer(group)
    first.subscribe([topic], on_assign=_ignore, on_revoke=_ignore)
    assert [m.offset for m in await drain(first, 10)] == list(range(10))
    await first.commit({tp: 6})
    assert await first.committed([tp]) == {tp: 6}
    await first.stop()

    second = await kit.consumer(group)
    second.subscribe([topic], on_assign=_ignore, on_revoke=_ignore)
    assert [m.offset for m in await drain(second, 4)] == [6, 7, 8, 9]
    assert await second.committed([tp]) == {tp: 6}


async def test_auto_offset_reset_earliest_and_latest(kit: Kit) -> None:
    (topic,) = await kit.topics(1)
    producer = await kit.producer()
    for i in range(5):
        producer.send_soon(topic, None, b"old-%d" % i)
    await producer.flush()

    earliest = await kit.consumer(kit.name("group"), auto_offset_reset="earliest")
    earliest.subscribe([topic], on_assign=_ignore, on_revoke=_ignore)
    assert [m.offset for m in await drain(earliest, 5)] == list(range(5))

    latest = await kit.consumer(kit.name("group"), auto_offset_reset="latest")
    latest.subscribe([topic], on_assign=_ignore, on_revoke=_ignore)
    await poll_until([latest], lambda: bool(latest.assignment()))
    assert await latest.getmany(max_records=100, timeout=1.0) == []

    for i in range(3):
        producer.send_soon(topic, None, b"new-%d" % i)
    await producer.flush()
    assert [m.value for m in await drain(latest, 3)] == [b"new-0", b"new-1", b"new-2"]


async def test_group_members_split_copartitioned_topics_by_partition_number(kit: Kit) -> None:
    orders, payments = await kit.topics(4, 4)
    group = kit.name("group")
    log: list[tuple[str, str, set[TP]]] = []
    # Client ids sort "member-a-..." before "member-b-...", as Kafka's member ids do.
    a = await kit.consumer(group, client_id="member-a")
    b = await kit.consumer(group, client_id="member-b")

    on_assign, on_revoke = _recording("a", log)
    a.subscribe([orders, payments], on_assign=on_assign, on_revoke=on_revoke)
    everything = {TP(t, p) for t in (orders, payments) for p in range(4)}
    await poll_until([a], lambda: a.assignment() == everything)

    on_assign, on_revoke = _recording("b", log)
    b.subscribe([orders, payments], on_assign=on_assign, on_revoke=on_revoke)
    await poll_until(
        [a, b], lambda: len(a.assignment()) == 4 and len(b.assignment()) == 4 and _settled(log)
    )

    assert a.assignment() == {TP(t, p) for t in (orders, payments) for p in (0, 1)}
    assert b.assignment() == {TP(t, p) for t in (orders, payments) for p in (2, 3)}
    for member, consumer in (("a", a), ("b", b)):
        changes = [
            (kind, tps) for who, kind, tps in log if who == member and tps and kind.endswith("end")
        ]
        # Callbacks alternate: each revoke gives back exactly what the last assign gave.
        assert [kind for kind, _ in changes] == ["assign-end", "revoke-end"] * (
            len(changes) // 2
        ) + ["assign-end"]
        for (_, assigned), (_, revoked) in zip(changes[::2], changes[1::2], strict=False):
            assert revoked == assigned
        assert changes[-1][1] == consumer.assignment()
    assert next(tps for who, kind, tps in log if who == "a" and kind == "assign-end") == everything
    # Eager protocol: a's revoke completes before b is given any partition.
    a_revoked = log.index(next(e for e in log if e[:2] == ("a", "revoke-end")))
    b_assigned = log.index(next(e for e in log if e[:2] == ("b", "assign-start") and e[2]))
    assert a_revoked < b_assigned

    # Each member reads only its own partitions.
    producer = await kit.producer()
    for tp in sorted(everything):
        producer.send_soon(tp.topic, None, b"x", partition=tp.partition)
    await producer.flush()
    received: dict[str, list[TP]] = {"a": [], "b": []}
    deadline = time.monotonic() + 30
    while len(received["a"]) + len(received["b"]) < len(everything):
        assert time.monotonic() < deadline, f"only {received} arrived"
        batch_a, batch_b = await asyncio.gather(a.getmany(100, 0.5), b.getmany(100, 0.5))
        received["a"] += [m.tp for m in batch_a]
        received["b"] += [m.tp for m in batch_b]
    assert set(received["a"]) == a.assignment()
    assert set(received["b"]) == b.assignment()


async def test_manual_assign_from_offset_seek_and_end_offsets(kit: Kit) -> None:
    (topic,) = await kit.topics(2)
    p0, p1 = TP(topic, 0), TP(topic, 1)
    producer = await kit.producer()
    for i in range(10):
        producer.send_soon(topic, None, b"%d" % i, partition=0)
    for i in range(3):
        producer.send_soon(topic, None, b"%d" % i, partition=1)
    await producer.flush()

    consumer = await kit.consumer()
    assert await consumer.end_offsets([p0, p1]) == {p0: 10, p1: 3}
    assert await consumer.beginning_offsets([p0, p1]) == {p0: 0, p1: 0}

    consumer.assign({p0: 7})
    assert consumer.assignment() == {p0}
    assert [m.offset for m in await drain(consumer, 3)] == [7, 8, 9]

    consumer.seek(p0, 2)
    assert [m.value for m in await drain(consumer, 8)] == [b"%d" % i for i in range(2, 10)]


async def _five_in_each_of_two_partitions(kit: Kit) -> tuple[str, TP, TP, ProducerT]:
    """A two-partition topic with b"0".."4" in each partition; its producer."""
    (topic,) = await kit.topics(2)
    producer = await kit.producer()
    for p in (0, 1):
        for i in range(5):
            producer.send_soon(topic, None, b"%d" % i, partition=p)
    await producer.flush()
    return topic, TP(topic, 0), TP(topic, 1), producer


async def test_paused_partitions_return_nothing_while_others_continue(kit: Kit) -> None:
    topic, p0, p1, producer = await _five_in_each_of_two_partitions(kit)

    consumer = await kit.consumer()
    consumer.assign({p0: 0, p1: 0})
    consumer.pause([p0])
    assert {m.tp for m in await drain(consumer, 5)} == {p1}
    assert await consumer.getmany(max_records=100, timeout=0.5) == []

    await producer.send(topic, None, b"late", partition=1)
    assert [(m.tp, m.value) for m in await drain(consumer, 1)] == [(p1, b"late")]

    consumer.resume([p0])
    resumed = await drain(consumer, 5)
    assert [(m.tp, m.offset) for m in resumed] == [(p0, i) for i in range(5)]


async def test_assign_starts_every_partition_unpaused(kit: Kit) -> None:
    """A partition paused under one assign() is fetched again under the next one that
    keeps it (a restore consumer is re-used from one recovery to the next)."""
    _, p0, p1, _ = await _five_in_each_of_two_partitions(kit)

    consumer = await kit.consumer()
    consumer.assign({p0: 0, p1: 0})
    assert len(await drain(consumer, 10)) == 10
    consumer.pause([p0, p1])
    consumer.assign({p0: 2, p1: 3})
    again = await drain(consumer, 5)
    assert sorted((m.tp, m.offset) for m in again) == [
        (p0, 2), (p0, 3), (p0, 4), (p1, 3), (p1, 4)]


async def test_stop_hands_partitions_back_through_on_revoke_which_may_commit(
    kit: Kit,
) -> None:
    """As a Kafka consumer's close(): stopping revokes the assignment, and the revoke
    callback can still commit (a worker's last checkpoint runs there)."""
    (topic,) = await kit.topics(1)
    tp = TP(topic, 0)
    group = kit.name("group")
    await kit.fill(topic, 5)
    revoked: list[set[TP]] = []
    consumer = await kit.consumer(group)

    async def commit_on_revoke(tps: set[TP]) -> None:
        revoked.append(tps)
        await consumer.commit({tp: 5})

    consumer.subscribe([topic], on_assign=_ignore, on_revoke=commit_on_revoke)
    assert len(await drain(consumer, 5)) == 5
    await consumer.stop()
    assert revoked == [{tp}]

    after = await kit.consumer(group)
    try:
        assert await after.committed([tp]) == {tp: 5}
    finally:
        await after.stop()


async def test_stop_is_idempotent_and_producer_stop_delivers(
    transport: TransportT, kit: Kit
) -> None:
    (topic,) = await kit.topics(1)
    producer = transport.create_producer()
    await producer.start()
    producer.send_soon(topic, None, b"pending")
    await producer.stop()
    await producer.stop()

    consumer = await kit.consumer(kit.name("group"))
    consumer.subscribe([topic], on_assign=_ignore, on_revoke=_ignore)
    assert [m.value for m in await drain(consumer, 1)] == [b"pending"]
    await consumer.stop()
    await consumer.stop()

    await transport.stop()
    await transport.stop()


async def _ignore(tps: set[TP]) -> None:
    pass


def _recording(
    who: str, log: list[tuple[str, str, set[TP]]]
) -> tuple[RebalanceCallback, RebalanceCallback]:
    """Rebalance callbacks that log when they start and end (and yield in between)."""

    async def on_assign(tps: set[TP]) -> None:
        log.append((who, "assign-start", set(tps)))
        await asyncio.sleep(0)
        log.append((who, "assign-end", set(tps)))

    async def on_revoke(tps: set[TP]) -> None:
        log.append((who, "revoke-start", set(tps)))
        await asyncio.sleep(0)
        log.append((who, "revoke-end", set(tps)))

    return on_assign, on_revoke


def _settled(log: list[tuple[str, str, set[TP]]]) -> bool:
    """Both members' latest callback is a finished assign."""
    last = {who: kind for who, kind, _ in log}
    return last.get("a") == "assign-end" and last.get("b") == "assign-end"


async def test_describe_group_lists_members_with_client_ids_and_assignments(
    transport: TransportT, kit: Kit
) -> None:
    from fluvial.exceptions import GroupRebalancing

    (topic,) = await kit.topics(4)
    group = kit.name("group")
    assert await transport.describe_group(kit.name("no-such-group")) == []
    a = await kit.consumer(group, client_id="fluvial|http://a:1")
    b = await kit.consumer(group, client_id="fluvial|http://b:1")
    a.subscribe([topic], on_assign=_ignore, on_revoke=_ignore)
    b.subscribe([topic], on_assign=_ignore, on_revoke=_ignore)
    await poll_until([a, b], lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2)

    async def settled() -> list[Any]:
        deadline = time.monotonic() + 30
        while True:
            try:
                members = await transport.describe_group(group)
            except GroupRebalancing:
                members = []
            if len(members) == 2 and all(m.assignment for m in members):
                return members
            assert time.monotonic() < deadline, members
            await asyncio.sleep(0.2)

    members = await settled()
    by_client = {m.client_id: m for m in members}
    assert set(by_client) == {"fluvial|http://a:1", "fluvial|http://b:1"}
    assert by_client["fluvial|http://a:1"].assignment == frozenset(a.assignment())
    assert by_client["fluvial|http://b:1"].assignment == frozenset(b.assignment())
    assert all(m.member_id and m.host for m in members)
