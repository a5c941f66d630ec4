"""The Kafka side of the bench: which broker, fresh topics, and the input produced beforehand."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bench.pipelines._common import ACCOUNTS, PARTITIONS, orders

REPO = Path(__file__).resolve().parent.parent

_ENCODE = msgspec.json.Encoder().encode


@contextmanager
def schema_registry(state_dir: Path) -> Iterator[str]:
    """Yield a schema registry URL: ``SCHEMA_REGISTRY_URL`` if set, else Apicurio Registry
    started for the bench (the tests' launcher; its download cached in ``.schema-registry``)."""
    existing = os.environ.get("SCHEMA_REGISTRY_URL")
    if existing:
        yield existing
        return
    from fluvial.testing.schema_registry import SchemaRegistryServer

    server = SchemaRegistryServer(state_dir, cache_dir=REPO / ".schema-registry")
    try:
        yield server.start()
    finally:
        server.stop()


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


def avro_encoder(registry_url: str, topic: str) -> Callable[[dict[str, Any]], bytes]:
    """Encode orders as Avro in the Confluent wire format, as confluent-kafka's
    AvroSerializer does (it registers the schema and writes the first message; the rest
    reuse its schema id, the same bytes at a fraction of the cost)."""
    import io
    import json

    import fastavro
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from bench.avro import order_schema

    schema = order_schema()
    serializer = AvroSerializer(SchemaRegistryClient({"url": registry_url}), json.dumps(schema),
                                conf={"normalize.schemas": True})
    first = serializer(next(orders(1))[1], SerializationContext(topic, MessageField.VALUE))
    header = first[:5]
    parsed = fastavro.parse_schema(schema)

    def encode(fields: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(header)
        fastavro.schemaless_writer(out, parsed, fields)
        return out.getvalue()

    return encode


def produce_orders(bootstrap: str, topic: str, n: int,
                   encode: Callable[[dict[str, Any]], bytes] | None = None,
                   accounts: int = ACCOUNTS) -> float:
    """Write ``n`` orders keyed by order id (JSON unless ``encode`` says otherwise);
    return the seconds it took (not benchmarked)."""
    encode = encode or _ENCODE
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
    for key, fields in orders(n, accounts=accounts):
        while True:
            try:
                producer.produce(topic, encode(fields), key.encode(), on_delivery=on_delivery)
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
