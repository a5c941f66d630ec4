"""The test Kafka harness starts a real broker that clients can use, and reuses it."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from fluvial.testing.kafka_server import KafkaServer

pytestmark = pytest.mark.kafka

REPO_ROOT = Path(__file__).resolve().parent.parent
external_kafka = pytest.mark.skipif(
    bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")),
    reason="KAFKA_BOOTSTRAP_SERVERS points at a cluster this harness did not start",
)


def create_topic(bootstrap: str, partitions: int = 1) -> str:
    name = f"test-harness-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions)])
    futures[name].result(timeout=30)
    return name


def consume_one(bootstrap: str, topic: str, timeout_s: float = 30.0) -> Message:
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"g-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest",
    })
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                return msg
        raise AssertionError(f"no message on {topic} within {timeout_s} s")
    finally:
        consumer.close()


def produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value, key)
    assert producer.flush(30) == 0


def test_topic_produce_and_consume(kafka_bootstrap: str) -> None:
    topic = create_topic(kafka_bootstrap, partitions=3)
    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic, timeout=10)
    assert len(metadata.topics[topic].partitions) == 3

    produce(kafka_bootstrap, topic, b"k", b"hello")
    msg = consume_one(kafka_bootstrap, topic)
    assert (msg.key(), msg.value()) == (b"k", b"hello")


def test_auto_topic_creation_is_off(kafka_bootstrap: str) -> None:
    # fluvial must create its own topics; the test broker must not paper over that.
    topic = f"never-created-{uuid.uuid4().hex[:12]}"
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.timeout.ms": 3000})
    errors: list[object] = []
    producer.produce(topic, b"v", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert topic not in admin.list_topics(timeout=10).topics


@external_kafka
def test_start_reuses_the_running_broker(kafka_bootstrap: str) -> None:
    again = KafkaServer(REPO_ROOT / ".kafka")
    assert again.start(pin=False) == kafka_bootstrap
    assert again.started is False


@external_kafka
def test_lifecycle_start_reuse_kill_restart_stop(tmp_path: Path) -> None:
    server = KafkaServer(tmp_path / "kafka")
    bootstrap = server.start()
    assert server.started is True
    status = server.status()
    assert status is not None and status["nodes"][0]["alive"] is True
    pid = status["nodes"][0]["pid"]

    other = KafkaServer(tmp_path / "kafka")  # another process would see the same state
    assert other.start() == bootstrap
    assert other.started is False

    topic = create_topic(bootstrap)
    produce(bootstrap, topic, b"k", b"before crash")
    server.kill_node(1, signal.SIGKILL)
    status = server.status()
    assert status is not None and status["nodes"][0]["alive"] is False
    server.restart_node(1)
    status = server.status()
    assert status is not None and status["nodes"][0]["alive"] is True
    new_pid = status["nodes"][0]["pid"]
    assert consume_one(bootstrap, topic).value() == b"before crash"  # data survived the crash

    server.stop()
    assert server.status() is None
    assert not Path(f"/proc/{pid}").exists() and not Path(f"/proc/{new_pid}").exists()
    assert not (tmp_path / "kafka" / "node-1").exists()


def test_cluster_ids_never_look_like_an_option() -> None:
    """kafka-storage reads an id starting with '-' as an option: the format fails."""
    from fluvial.testing.kafka_server import _cluster_id

    ids = [_cluster_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids) and all(len(i) == 22 for i in ids)
