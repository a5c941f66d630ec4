"""Behaviour of the ``memory://`` broker beyond the shared transport contract."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from fluvial.exceptions import (
    CommitError,
    ImproperlyConfigured,
    ProducerError,
    SerializationError,
    TransportError,
)
from fluvial.transport import by_url
from fluvial.transport.memory import MemoryBroker, MemoryTransport, range_assign
from fluvial.transport.memory._broker import PartitionLog
from fluvial.types import TP, TopicSpec

from .conftest import drain, poll_until


@pytest.fixture
def url() -> Iterator[str]:
    url = f"memory://test-{uuid.uuid4().hex}"
    yield url
    MemoryBroker.reset(url)


@pytest_asyncio.fixture(loop_scope="function")
async def transport(url: str) -> AsyncIterator[MemoryTransport]:
    transport = MemoryTransport(url)
    await transport.start()
    yield transport
    await transport.stop()


class ManualClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


async def _ignore(tps: set[TP]) -> None:
    pass


# -- brokers are process-global per URL -------------------------------------------------


async def test_transports_with_the_same_url_share_one_broker(url: str) -> None:
    first, second = MemoryTransport(url), MemoryTransport(url)
    other = MemoryTransport(url + "-other")
    try:
        await first.create_topics([TopicSpec("shared", 2)])

        assert await second.partition_counts(["shared"]) == {"shared": 2}
        assert await other.partition_counts(["shared"]) == {"shared": None}
        assert first.broker is second.broker is not other.broker
        assert MemoryBroker.for_url("memory://") is not MemoryBroker.for_url("memory://x")
    finally:
        MemoryBroker.reset(url + "-other")


async def test_restarted_consumer_finds_offsets_committed_through_another_transport(
    url: str,
) -> None:
    tp = TP("events", 0)
    before = MemoryTransport(url)
    producer = before.create_producer()
    await producer.start()
    for i in range(5):
        producer.send_soon("events", None, b"%d" % i)
    consumer = before.create_consumer("app")
    await consumer.start()
    consumer.subscribe(["events"], on_assign=_ignore, on_revoke=_ignore)
    await drain(consumer, 3)
    await consumer.commit({tp: 3})
    await before.stop()

    after = MemoryTransport(url)
    resumed = after.create_consumer("app")
    await resumed.start()
    resumed.subscribe(["events"], on_assign=_ignore, on_revoke=_ignore)
    assert [m.value for m in await drain(resumed, 2)] == [b"3", b"4"]
    await after.stop()


async def test_reset_forgets_topics_and_committed_offsets(url: str) -> None:
    old = MemoryTransport(url)
    await old.create_topics([TopicSpec("events", 1)])
    consumer = old.create_consumer("app")
    await consumer.start()
    await consumer.commit({TP("events", 0): 1})
    await old.stop()

    MemoryBroker.reset(url)

    fresh = MemoryTransport(url)
    assert await fresh.partition_counts(["events"]) == {"events": None}
    await fresh.create_topics([TopicSpec("events", 1)])
    reader = fresh.create_consumer("app")
    assert await reader.committed([TP("events", 0)]) == {TP("events", 0): None}


def test_by_url_makes_an_in_process_memory_transport() -> None:
    transport = by_url("memory://")
    assert isinstance(transport, MemoryTransport)
    assert transport.in_process is True


@pytest.mark.parametrize(
    "bad", ["memory://?partitions=0", "memory://?partitions=x", "memory://?x=1"]
)
def test_bad_url_parameters_are_refused(bad: str) -> None:
    with pytest.raises(ImproperlyConfigured):
        MemoryTransport(bad)


# -- producing ----------------------------------------------------------------------------


async def test_timestamps_come_from_the_clock_in_milliseconds(url: str) -> None:
    clock = ManualClock(1000.5)
    transport = MemoryTransport(url, clock=clock)
    producer = transport.create_producer()
    await producer.start()

    first = await producer.send("ticks", None, b"a")
    clock.now = 2000.12345
    second = await producer.send("ticks", None, b"b")
    given = await producer.send("ticks", None, b"c", timestamp=5.0)

    assert (first.timestamp, second.timestamp, given.timestamp) == (1000.5, 2000.123, 5.0)
    assert [m.timestamp for m in transport.broker.messages("ticks")] == [1000.5, 2000.123, 5.0]
    await transport.stop()


async def test_sending_to_a_missing_topic_creates_it_with_the_url_partition_count(
    url: str,
) -> None:
    default = MemoryTransport(url)
    eight = MemoryTransport(url + "?partitions=8")
    for transport, topic in ((default, "one"), (eight, "eight")):
        producer = transport.create_producer()
        await producer.start()
        await producer.send(topic, b"k", b"v")

    assert await default.partition_counts(["one", "eight"]) == {"one": 1, "eight": 8}
    await default.stop()
    await eight.stop()


async def test_unkeyed_messages_go_round_robin(transport: MemoryTransport) -> None:
    await transport.create_topics([TopicSpec("rr", 3)])
    producer = transport.create_producer()
    await producer.start()
    partitions = [(await producer.send("rr", None, b"v")).partition for _ in range(6)]
    assert partitions == [0, 1, 2, 0, 1, 2]


async def test_delivery_failures_fail_the_future_or_the_next_flush(
    transport: MemoryTransport,
) -> None:
    await transport.create_topics([TopicSpec("two", 2)])
    producer = transport.create_producer()
    await producer.start()

    with pytest.raises(ProducerError, match="partition 5"):
        await producer.send("two", None, b"v", partition=5)
    producer.send_soon("two", None, b"v", partition=7)
    producer.send_soon("bad name!", None, b"v")
    with pytest.raises(ProducerError, match="2 messages could not be delivered"):
        await producer.flush()
    await producer.flush()  # errors are reported once


async def test_only_bytes_are_stored(transport: MemoryTransport) -> None:
    producer = transport.create_producer()
    await producer.start()
    with pytest.raises(SerializationError, match="str, not bytes"):
        producer.send_soon("t", None, "text")  # type: ignore[arg-type]
    await producer.send("t", bytearray(b"key"), memoryview(b"value"))  # type: ignore[arg-type]
    (message,) = transport.broker.messages("t")
    assert (type(message.key), message.value) == (bytes, b"value")


async def test_readers_get_their_own_messages_and_headers(transport: MemoryTransport) -> None:
    producer = transport.create_producer()
    await producer.start()
    await producer.send("t", None, b"v", headers=[("h", b"1")])
    first, second = transport.broker.messages("t"), transport.broker.messages("t")
    first[0].hold(3)
    first[0].headers.append(("mine", b""))
    assert first[0] is not second[0]
    assert (second[0].holders, second[0].headers) == (0, [("h", b"1")])


# -- consuming ----------------------------------------------------------------------------


async def test_waiting_getmany_wakes_on_produce(transport: MemoryTransport) -> None:
    await transport.create_topics([TopicSpec("t", 1)])
    producer, consumer = transport.create_producer(), transport.create_consumer(None)
    await producer.start()
    await consumer.start()
    consumer.assign({TP("t", 0): 0})
    fetch = asyncio.create_task(consumer.getmany(max_records=10, timeout=60))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not fetch.done()

    producer.send_soon("t", None, b"wake")
    # Woken by the append itself: done within a few loop iterations, not a timeout.
    for _ in range(5):
        await asyncio.sleep(0)
    assert fetch.done()
    assert [m.value for m in fetch.result()] == [b"wake"]


async def test_subscribing_to_a_missing_topic_assigns_it_once_created(
    transport: MemoryTransport,
) -> None:
    consumer = transport.create_consumer("g")
    await consumer.start()
    consumer.subscribe(["later"], on_assign=_ignore, on_revoke=_ignore)
    assert await consumer.getmany(max_records=10, timeout=0) == []
    assert consumer.assignment() == set()

    producer = transport.create_producer()
    await producer.start()
    await producer.send("later", None, b"first")  # auto-creates the topic
    assert [m.value for m in await drain(consumer, 1)] == [b"first"]
    assert consumer.assignment() == {TP("later", 0)}


async def test_no_member_is_assigned_until_every_owner_finished_revoking(
    transport: MemoryTransport,
) -> None:
    await transport.create_topics([TopicSpec("t", 2)])
    release, revoking = asyncio.Event(), asyncio.Event()
    assigned_b: list[set[TP]] = []

    async def slow_revoke(tps: set[TP]) -> None:
        revoking.set()
        await release.wait()

    async def record_b(tps: set[TP]) -> None:
        assigned_b.append(tps)

    a, b = transport.create_consumer("g"), transport.create_consumer("g")
    await a.start()
    await b.start()
    a.subscribe(["t"], on_assign=_ignore, on_revoke=slow_revoke)
    await poll_until([a], lambda: len(a.assignment()) == 2)
    b.subscribe(["t"], on_assign=record_b, on_revoke=_ignore)
    await revoking.wait()
    for _ in range(20):
        await asyncio.sleep(0)
    assert assigned_b == []  # a still owns both partitions

    release.set()
    await poll_until([a, b], lambda: bool(assigned_b) and len(a.assignment()) == 1)
    assert assigned_b == [{TP("t", 1)}]
    assert a.assignment() == {TP("t", 0)}


async def test_commit_of_a_revoked_partition_is_refused(transport: MemoryTransport) -> None:
    await transport.create_topics([TopicSpec("t", 2)])
    a, b = transport.create_consumer("g"), transport.create_consumer("g")
    await a.start()
    await b.start()
    a.subscribe(["t"], on_assign=_ignore, on_revoke=_ignore)
    await poll_until([a], lambda: len(a.assignment()) == 2)
    b.subscribe(["t"], on_assign=_ignore, on_revoke=_ignore)
    await poll_until([a, b], lambda: len(a.assignment()) == len(b.assignment()) == 1)

    with pytest.raises(CommitError, match="not assigned"):
        await a.commit({TP("t", 1): 1})
    await a.commit({TP("t", 0): 1})
    assert await b.committed([TP("t", 0), TP("t", 1)]) == {TP("t", 0): 1, TP("t", 1): None}


async def test_a_member_that_stops_revokes_and_hands_over_its_partitions(
    transport: MemoryTransport,
) -> None:
    await transport.create_topics([TopicSpec("t", 2)])
    revoked: list[set[TP]] = []

    async def on_revoke(tps: set[TP]) -> None:
        revoked.append(tps)

    a, b = transport.create_consumer("g"), transport.create_consumer("g")
    await a.start()
    await b.start()
    a.subscribe(["t"], on_assign=_ignore, on_revoke=_ignore)
    b.subscribe(["t"], on_assign=_ignore, on_revoke=on_revoke)
    await poll_until([a, b], lambda: len(a.assignment()) == len(b.assignment()) == 1)

    await b.stop()
    assert revoked[-1] == {TP("t", 1)}
    await poll_until([a], lambda: len(a.assignment()) == 2)


async def test_a_failing_rebalance_callback_is_raised_by_getmany(
    transport: MemoryTransport,
) -> None:
    await transport.create_topics([TopicSpec("t", 1)])

    async def broken(tps: set[TP]) -> None:
        raise ValueError("boom")

    consumer = transport.create_consumer("g")
    await consumer.start()
    consumer.subscribe(["t"], on_assign=broken, on_revoke=_ignore)
    with pytest.raises(TransportError, match="rebalance callback failed") as raised:
        await poll_until([consumer], lambda: False, timeout=5)
    assert isinstance(raised.value.__cause__, ValueError)


async def test_an_out_of_range_position_resets_by_policy(transport: MemoryTransport) -> None:
    producer = transport.create_producer()
    await producer.start()
    for i in range(3):
        producer.send_soon("t", None, b"%d" % i)
    earliest = transport.create_consumer(None, auto_offset_reset="earliest")
    latest = transport.create_consumer(None, auto_offset_reset="latest")
    for consumer in (earliest, latest):
        await consumer.start()
        consumer.assign({TP("t", 0): 100})

    assert [m.offset for m in await drain(earliest, 3)] == [0, 1, 2]
    assert await latest.getmany(max_records=10, timeout=0) == []
    producer.send_soon("t", None, b"3")
    assert [m.offset for m in await drain(latest, 1)] == [3]


async def test_fetches_take_turns_between_partitions(transport: MemoryTransport) -> None:
    await transport.create_topics([TopicSpec("t", 3)])
    producer = transport.create_producer()
    await producer.start()
    for p in range(3):
        for _ in range(10):
            producer.send_soon("t", None, b"v", partition=p)
    consumer = transport.create_consumer(None)
    await consumer.start()
    consumer.assign({TP("t", p): 0 for p in range(3)})
    firsts = [(await consumer.getmany(max_records=4, timeout=0))[0].partition for _ in range(3)]
    assert sorted(firsts) == [0, 1, 2]


async def test_misuse_is_refused_with_clear_errors(transport: MemoryTransport) -> None:
    with pytest.raises(ImproperlyConfigured, match="Invalid topic name"):
        await transport.create_topics([TopicSpec("t", 1), TopicSpec("bad name", 1)])
    assert await transport.partition_counts(["t"]) == {"t": None}  # all or nothing
    await transport.create_topics([TopicSpec("t", 1)])
    consumer = transport.create_consumer(None)
    with pytest.raises(TransportError, match="not started"):
        await consumer.getmany(max_records=1, timeout=0)
    await consumer.start()
    with pytest.raises(ImproperlyConfigured, match="group_id"):
        consumer.subscribe(["t"], on_assign=_ignore, on_revoke=_ignore)
    with pytest.raises(TransportError, match="not assigned"):
        consumer.seek(TP("t", 0), 0)
    with pytest.raises(TransportError, match="partition 3 does not exist"):
        await consumer.end_offsets([TP("t", 3)])
    with pytest.raises(ImproperlyConfigured, match="auto_offset_reset"):
        transport.create_consumer("g", auto_offset_reset="none")

    await transport.stop()
    with pytest.raises(TransportError, match="stopped"):
        await consumer.getmany(max_records=1, timeout=0)


def test_range_assignor_splits_each_topic_in_contiguous_ranges() -> None:
    assignment = range_assign({"b": ["x", "y"], "a": ["x", "y"], "c": ["y"]}, {"x": 5, "y": 3})
    assert assignment == {
        "a": {TP("x", 0), TP("x", 1), TP("x", 2), TP("y", 0)},
        "b": {TP("x", 3), TP("x", 4), TP("y", 1)},
        "c": {TP("y", 2)},
    }


async def test_many_messages_round_trip_in_order(transport: MemoryTransport) -> None:
    await transport.create_topics([TopicSpec("bulk", 4)])
    producer = transport.create_producer()
    await producer.start()
    total = 200_000
    for i in range(total):
        producer.send_soon("bulk", None, b"x", partition=i & 3)
    await producer.flush()

    consumer = transport.create_consumer(None)
    await consumer.start()
    consumer.assign({TP("bulk", p): 0 for p in range(4)})
    next_offset = dict.fromkeys(range(4), 0)
    received = 0
    while received < total:
        batch = await consumer.getmany(max_records=10_000, timeout=0)
        assert batch, f"stalled after {received} messages"
        for message in batch:
            assert message.offset == next_offset[message.partition]
            next_offset[message.partition] += 1
        received += len(batch)
    assert next_offset == dict.fromkeys(range(4), total // 4)


def test_partition_log_reads_across_sealed_segments() -> None:
    log = PartitionLog()
    records = [(None, b"%d" % i, float(i), None) for i in range(3 * PartitionLog.SEGMENT + 5)]
    offsets = [log.append(record) for record in records]

    assert offsets == list(range(len(records)))
    assert len(log) == len(records)
    size = PartitionLog.SEGMENT
    for start, stop in [
        (0, len(records)),
        (1, size - 1),
        (size - 1, size + 1),
        (size, 2 * size),
        (size + 7, 3 * size + 2),
        (3 * size + 1, 3 * size + 5),
        (len(records), len(records)),
    ]:
        assert log.read(start, stop) == records[start:stop], (start, stop)
