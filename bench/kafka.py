"""The Kafka side of the bench: which broker, fresh topics, and the input produced beforehand."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bench.pipelines._common import PARTITIONS, orders

_ENCODE = msgspec.json.Encoder().encode


@contextmanager
def kafka_broker() -> Iterator[str]:
    """Yield a bootstrap address: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a local broker.

    The local broker is fluvial's test broker in its usual state folder
    (``$FLUVIAL_KAFKA_STATE`` or ``./.kafka``): one started by ``make kafka-up`` is
    reused and left running; one the bench had to start is stopped afterwards.
    """
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    # Imported here so memory-only runs need no Java and no Kafka launcher.
    from fluvial.testing.kafka_server import KafkaServer

    server = KafkaServer(nodes=1)
    bootstrap = server.acquire()
    try:
        yield bootstrap
    finally:
        server.release()


def create_topic(bootstrap: str, name: str, partitions: int = PARTITIONS) -> None:
    """Create ``name`` and wait until the broker confirms it."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    try:
        futures[name].result(timeout=30)
    except KafkaException as exc:
        raise RuntimeError(f"could not create topic {name!r} on {bootstrap}: {exc}") from exc


def produce_orders(bootstrap: str, topic: str, n: int) -> float:
    """Write ``n`` JSON orders keyed by order id; return the seconds it took (not benchmarked)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 500_000,
            "enable.idempotence": False,
        }
    )
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    started = time.perf_counter()
    for key, fields in orders(n):
        while True:
            try:
                producer.produce(topic, _ENCODE(fields), key.encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)  # local queue full: let deliveries drain
    left = producer.flush(60)
    if left or failures:
        raise RuntimeError(
            f"producing {n} orders to {topic!r} failed: {left} undelivered, "
            f"first errors: {failures[:3]}"
        )
    return time.perf_counter() - started


def delete_topic(bootstrap: str, name: str) -> None:
    """Drop a run's source topic so a long bench session does not fill the broker's disk."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    try:
        admin.delete_topics([name])[name].result(timeout=30)
    except KafkaException:
        pass  # best effort: a leftover topic only costs disk


def committed_events(bootstrap: str, group: str, topic: str) -> int | None:
    """Sum of ``group``'s committed offsets on ``topic``: how far a run got, seen from outside.

    Used when a run times out, to tell a stall at some offset from a slow crawl.
    Commits lag processing by up to one commit interval. None if nothing is committed.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 4})
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = consumer.committed(parts, timeout=10)
    except KafkaException:
        return None
    finally:
        consumer.close()
    offsets = [tp.offset for tp in committed if tp.offset >= 0]
    return sum(offsets) if offsets else None
