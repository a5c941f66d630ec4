"""Kafka-specific behaviour of ``kafka://`` beyond the shared contract (test_contract.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from fluvial.exceptions import (
    BrokerUnreachable,
    CommitError,
    PartitionCountMismatch,
    ProducerError,
    TransportError,
)
from fluvial.transport.kafka import KafkaTransport, bootstrap_servers
from fluvial.transport.partitioner import partition_for_key
from fluvial.types import TP, TopicSpec

from .conftest import Kit, drain, poll_until

pytestmark = pytest.mark.timeout(120)


def test_bootstrap_servers_from_url() -> None:
    assert bootstrap_servers("kafka://localhost") == "localhost:9092"
    assert bootstrap_servers("kafka://a:1;kafka://b,c:3") == "a:1,b:9092,c:3"
    assert bootstrap_servers("h1:9093, h2") == "h1:9093,h2:9092"


@pytest_asyncio.fixture(loop_scope="function")
async def kafka(kafka_url: str) -> AsyncIterator[KafkaTransport]:
    transport = KafkaTransport(kafka_url)
    await transport.start()
    try:
        yield transport
    finally:
        await transport.stop()


@pytest_asyncio.fixture(loop_scope="function")
async def kit(kafka: KafkaTransport) -> AsyncIterator[Kit]:
    kit = Kit(kafka)
    try:
        yield kit
    finally:
        await kit.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_broker_fails_fast_and_says_what_to_do(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = _closed_port()
    transport = KafkaTransport(f"kafka://127.0.0.1:{port}", connect_timeout_s=1.5)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(BrokerUnreachable) as raised:
        await transport.start()
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert f"127.0.0.1:{port}" in message
    assert "--broker" in message and "FLUVIAL_BROKER" in message
    # librdkafka's connection errors reach Python logging (not stderr).
    assert any(r.name.startswith("fluvial.transport.kafka") for r in caplog.records)


async def test_a_refused_connection_is_one_warning_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """librdkafka retries a refused connection (a broker restarting): it is logged
    at WARNING once per interval, not also repeated by the error callbacks."""
    port = _closed_port()
    consumer = KafkaTransport(f"kafka://127.0.0.1:{port}").create_consumer("g")
    with caplog.at_level(logging.DEBUG, logger="fluvial"):
        await consumer.start()
        consumer.subscribe(["t"], on_assign=_nothing, on_revoke=_nothing)
        await poll_until([consumer], lambda: any(
            "Connection refused" in r.getMessage() and r.levelno >= logging.WARNING
            for r in caplog.records), timeout=10)
        await consumer.stop()
    refused = [r for r in caplog.records if "Connection refused" in r.getMessage()]
    assert not [r for r in refused if r.levelno >= logging.ERROR]
    [shown] = [r for r in refused if r.levelno == logging.WARNING]
    assert shown.getMessage().startswith(f"Cannot reach Kafka broker 127.0.0.1:{port}/")


async def _nothing(_: set[TP]) -> None:
    return None


@pytest.mark.kafka
async def test_partition_mismatch_tells_how_to_fix(kafka: KafkaTransport, kit: Kit) -> None:
    (topic,) = await kit.topics(2)
    with pytest.raises(PartitionCountMismatch, match=r"partitions=") as raised:
        await kafka.create_topics([TopicSpec(topic, 4), TopicSpec(kit.name("new"), 1)])
    assert f"{topic!r} has 2 partitions but the app needs 4" in str(raised.value)


@pytest.mark.kafka
async def test_delivery_failure_surfaces_at_flush_not_a_hang(kafka: KafkaTransport) -> None:
    producer = kafka.create_producer(**{"message.timeout.ms": 1500})
    await producer.start()
    missing = Kit.name("missing")  # auto-creation is off on the test broker
    try:
        producer.send_soon(missing, b"k", b"v")
        fut = producer.send(missing, b"k2", b"v2")
        with pytest.raises(ProducerError, match=missing):
            await asyncio.wait_for(producer.flush(), 20)
        with pytest.raises(ProducerError, match=missing):
            await fut
        await producer.flush()  # failures are reported once
    finally:
        await producer.stop()


@pytest.mark.kafka
async def test_flush_with_nothing_in_flight_does_not_wait_for_a_poll_round(
        kafka: KafkaTransport, kit: Kit) -> None:
    """A checkpoint flushes the producer every few thousand events: when all was
    delivered, the flush returns at once instead of waiting for the poll thread's
    next round (up to 50 ms each, which held up a plain pipeline's fetching for
    more than half of its run), and a failure after that still surfaces."""
    (topic,) = await kit.topics(1)
    producer = kafka.create_producer(**{"message.timeout.ms": 1500})
    await producer.start()
    try:
        for i in range(100):
            producer.send_soon(topic, None, str(i).encode())
        await producer.flush()
        started = time.monotonic()
        for _ in range(40):
            await producer.flush()
        assert time.monotonic() - started < 0.4  # one poll round each: ~1 s
        missing = Kit.name("missing")  # auto-creation is off on the test broker
        producer.send_soon(missing, b"k", b"v")
        with pytest.raises(ProducerError, match=missing):
            await asyncio.wait_for(producer.flush(), 20)
    finally:
        await producer.stop()


@pytest.mark.kafka
async def test_send_metadata_matches_murmur2_partitioner(kit: Kit) -> None:
    (topic,) = await kit.topics(7)
    producer = await kit.producer()
    keys = [f"user-{i}".encode() for i in range(40)]
    metas = await asyncio.gather(*(producer.send(topic, k, b"v", timestamp=1.5) for k in keys))
    for key, meta in zip(keys, metas, strict=True):
        assert meta.topic == topic
        assert meta.partition == partition_for_key(key, 7)
        assert meta.timestamp == 1.5


@pytest.mark.kafka
async def test_small_batches_with_bounded_handoff_keep_order(kit: Kit) -> None:
    (topic,) = await kit.topics(1)
    producer = await kit.producer()
    for i in range(2000):
        producer.send_soon(topic, None, str(i).encode())
    await producer.flush()
    consumer = await kit.consumer(None, batch_size=7, max_pending_batches=1)
    consumer.assign({TP(topic, 0): 0})
    got: list[bytes | None] = []
    deadline = time.monotonic() + 30
    while len(got) < 2000 and time.monotonic() < deadline:
        batch = await consumer.getmany(max_records=5, timeout=1.0)
        assert len(batch) <= 5
        got += [m.value for m in batch]
    assert got == [str(i).encode() for i in range(2000)]


@pytest.mark.kafka
async def test_rebalance_callbacks_split_and_commit_inside_on_revoke(kit: Kit) -> None:
    a_topic, b_topic = await kit.topics(4, 4)
    group = kit.name("group")
    producer = await kit.producer()
    for p in range(4):
        producer.send_soon(a_topic, None, b"a", partition=p)
    await producer.flush()

    events: list[tuple[str, str, frozenset[TP]]] = []
    committed_in_revoke: list[dict[TP, int | None]] = []
    first = await kit.consumer(group)

    async def first_assign(tps: set[TP]) -> None:
        events.append(("first", "assign", frozenset(tps)))

    async def first_revoke(tps: set[TP]) -> None:
        events.append(("first", "revoke", frozenset(tps)))
        mine = {tp: 1 for tp in tps if tp.topic == a_topic}
        if mine:
            # The consumer thread is blocked in this callback; commit must still work.
            await first.commit(mine)
            committed_in_revoke.append(await first.committed(mine))

    first.subscribe([a_topic, b_topic], on_assign=first_assign, on_revoke=first_revoke)
    await poll_until([first], lambda: len(first.assignment()) == 8)
    assert events == [("first", "assign", frozenset(first.assignment()))]

    second = await kit.consumer(group)
    second_sets: list[set[TP]] = []

    async def second_assign(tps: set[TP]) -> None:
        second_sets.append(tps)

    async def second_revoke(tps: set[TP]) -> None:
        pass

    second.subscribe([a_topic, b_topic], on_assign=second_assign, on_revoke=second_revoke)
    await poll_until(
        [first, second],
        lambda: len(first.assignment()) == 4 and len(second.assignment()) == 4,
    )
    everything = frozenset(TP(t, p) for t in (a_topic, b_topic) for p in range(4))
    assert ("first", "revoke", everything) in events  # eager protocol: all, then re-assign
    assert committed_in_revoke and all(v == 1 for v in committed_in_revoke[0].values())
    # Range assignment: the same partition numbers of both topics go to one member.
    for consumer in (first, second):
        numbers = {
            t: {tp.partition for tp in consumer.assignment() if tp.topic == t}
            for t in (a_topic, b_topic)
        }
        assert numbers[a_topic] == numbers[b_topic] and len(numbers[a_topic]) == 2
    assert second_sets[-1] == second.assignment()
    assert first.assignment().isdisjoint(second.assignment())


@pytest.mark.kafka
async def test_failing_rebalance_callback_surfaces_in_getmany(kit: Kit) -> None:
    (topic,) = await kit.topics(1)
    consumer = await kit.consumer(kit.name("group"))

    async def on_assign(tps: set[TP]) -> None:
        raise RuntimeError("assign handler broke")

    async def on_revoke(tps: set[TP]) -> None:
        pass

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    with pytest.raises(RuntimeError, match="assign handler broke"):
        await poll_until([consumer], lambda: False, timeout=30)


@pytest.mark.kafka
async def test_resubscribe_changes_topics(kit: Kit) -> None:
    old, new = await kit.topics(1, 1)
    producer = await kit.producer()
    await producer.send(new, None, b"from-new")
    consumer = await kit.consumer(kit.name("group"))

    async def noop(tps: set[TP]) -> None:
        pass

    consumer.subscribe([old], on_assign=noop, on_revoke=noop)
    await poll_until([consumer], lambda: consumer.assignment() == {TP(old, 0)})
    consumer.subscribe([new], on_assign=noop, on_revoke=noop)
    (message,) = await drain(consumer, 1)
    assert (message.topic, message.value) == (new, b"from-new")
    assert consumer.assignment() == {TP(new, 0)}


@pytest.mark.kafka
async def test_paused_buffered_messages_come_back_in_order_on_resume(kit: Kit) -> None:
    (topic,) = await kit.topics(2)
    producer = await kit.producer()
    for i in range(50):
        producer.send_soon(topic, None, str(i).encode(), partition=i % 2)
    await producer.flush()
    consumer = await kit.consumer(None)
    consumer.assign({TP(topic, 0): 0, TP(topic, 1): 0})
    first = await drain(consumer, 1)  # the rest of its batch stays buffered
    consumer.pause([TP(topic, 0)])
    rest = await drain(consumer, 25 - sum(m.partition == 1 for m in first))
    assert all(m.partition == 1 for m in rest)
    assert await consumer.getmany(100, 0.3) == []
    consumer.resume([TP(topic, 0)])
    zeros = [m for m in first if m.partition == 0] + await drain(
        consumer, 25 - sum(m.partition == 0 for m in first)
    )
    assert [m.offset for m in zeros] == list(range(25))


@pytest.mark.kafka
async def test_seek_discards_buffered_messages_and_beginning_offsets(kit: Kit) -> None:
    (topic,) = await kit.topics(1)
    producer = await kit.producer()
    for i in range(100):
        producer.send_soon(topic, None, str(i).encode())
    await producer.flush()
    consumer = await kit.consumer(None)
    tp = TP(topic, 0)
    consumer.assign({tp: 0})
    head = await drain(consumer, 10)
    assert head[0].offset == 0
    consumer.seek(tp, 90)
    tail = await drain(consumer, 10)
    assert [m.offset for m in tail] == list(range(90, 100))
    assert await consumer.beginning_offsets([tp]) == {tp: 0}
    assert await consumer.end_offsets([tp]) == {tp: 100}


@pytest.mark.kafka
async def test_consumer_without_group_cannot_commit(kit: Kit) -> None:
    (topic,) = await kit.topics(1)
    consumer = await kit.consumer(None)
    with pytest.raises(CommitError, match="group_id=None"):
        await consumer.commit({TP(topic, 0): 1})
    assert await consumer.committed([TP(topic, 0)]) == {TP(topic, 0): None}


@pytest.mark.kafka
async def test_a_flush_with_nothing_in_flight_does_not_wait_out_a_poll(kit: Kit) -> None:
    """The poll thread waits on an event a flush sets when nothing is in flight:
    50 such flushes once waited ~25 ms each (half a poll interval, on average)."""
    (topic,) = await kit.topics(1)
    producer = await kit.producer()
    await producer.send(topic, None, b"x")  # connected, nothing left in flight
    started = time.monotonic()
    for _ in range(50):
        await producer.flush()
    assert time.monotonic() - started < 1.0
    # A send while the thread waits so is still delivered, its future resolved.
    metadata = await asyncio.wait_for(producer.send(topic, None, b"y"), 30)
    assert metadata.offset == 1


@pytest.mark.kafka
async def test_requests_after_stop_fail_clearly(kit: Kit) -> None:
    (topic,) = await kit.topics(1)
    consumer = await kit.consumer(kit.name("group"))
    await consumer.stop()
    await consumer.stop()
    with pytest.raises(TransportError, match="stopped"):
        await consumer.end_offsets([TP(topic, 0)])
    with pytest.raises(CommitError, match="stopped"):
        await consumer.commit({TP(topic, 0): 1})
