"""fluvial's partitioner places keys exactly where Kafka's clients do."""

from __future__ import annotations

import random
import uuid

import pytest
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from fluvial.exceptions import ImproperlyConfigured
from fluvial.transport.partitioner import murmur2, partition_for_key

# Expected values of the Java client's Utils.murmur2 (Kafka's UtilsTest and
# other ports that checked themselves against it).
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
    "1": -1993445489,
    "12": 126087238,
    "123": -267702483,
    "1234": -1614185708,
    "12345": -1188365604,
}


@pytest.mark.parametrize(("text", "expected"), JAVA_MURMUR2.items())
def test_murmur2_matches_java(text: str, expected: int) -> None:
    assert murmur2(text.encode()) == expected


def test_partition_for_key_uses_positive_hash_modulo() -> None:
    # "foobar" hashes negative: the sign bit is masked off, not abs()'d.
    expected = (-790332482 & 0x7FFFFFFF) % 7
    assert expected == 1357151166 % 7
    assert partition_for_key(b"foobar", 7) == expected
    assert partition_for_key(bytearray(b"foobar"), 7) == expected
    assert partition_for_key(b"foobar", 1) == 0


def test_partition_count_must_be_positive() -> None:
    with pytest.raises(ImproperlyConfigured):
        partition_for_key(b"k", 0)


@pytest.mark.kafka
def test_partitions_agree_with_librdkafka_and_the_broker(kafka_bootstrap: str) -> None:
    partitions = 7
    topic = f"test-partitioner-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions)])[topic].result(timeout=30)

    rng = random.Random(20240601)
    # Every length 0..39 (all four tail cases), then random lengths.
    keys = [rng.randbytes(n) for n in range(40)]
    keys += [rng.randbytes(rng.randint(1, 64)) for _ in range(160)]
    landed: dict[bytes, int] = {}

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        assert err is None, err
        landed[msg.key()] = msg.partition()

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    for key in keys:
        producer.produce(topic, b"v", key, on_delivery=on_delivery)
    assert producer.flush(30) == 0

    assert len(landed) == len(set(keys))
    assert len(set(landed.values())) == partitions  # the keys did spread
    wrong = {k: p for k, p in landed.items() if partition_for_key(k, partitions) != p}
    assert wrong == {}
