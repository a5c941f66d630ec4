"""confluent-kafka's own serializers and fluvial read each other's messages on Kafka."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

import fluvial as faust
from fluvial.schemas import avro_schema_of, json_schema_of

from .conftest import eventually
from .messages import Item, Order, Payment, Reading

pytestmark = pytest.mark.kafka

# A schema written by hand, as another team would: fluvial's Record must read it.
ORDER_SCHEMA = {
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "items", "type": {"type": "array", "items": {
            "type": "record", "name": "Item",
            "fields": [{"name": "sku", "type": "string"},
                       {"name": "quantity", "type": "long", "default": 1}]}}},
        {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                    "precision": 38, "scale": 9}},
        {"name": "tags", "type": {"type": "map", "values": "string"}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}
PLACED = datetime(2026, 12, 4, 10, 0, tzinfo=timezone.utc)


def produce(bootstrap: str, topic: str, payload: bytes) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result(timeout=30)
    errors: list[Any] = []
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, payload, on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(30) == 0
    assert errors == [None]


def consume_one(bootstrap: str, topic: str) -> bytes:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                return bytes(msg.value())
        raise AssertionError(f"nothing on {topic}")
    finally:
        consumer.close()


async def read_with_fluvial(app: faust.App, topic: faust.Topic[Any]) -> Any:
    seen: list[Any] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[Any]) -> None:
        async for value in stream:
            seen.append(value)

    async with app.running():
        await eventually(lambda: seen, message="the message in fluvial")
    return seen[0]


async def send_with_fluvial(app: faust.App, topic: faust.Topic[Any], value: Any) -> None:
    async with app.running():
        await (await topic.send(value=value))


def new_app(unique: Callable[[str], str], kafka_url: str, url: str) -> faust.App:
    return faust.App(unique("interop"), broker=kafka_url, schema_registry_url=url,
                     broker_commit_interval=0.2)


async def test_avro_from_confluent_to_fluvial_and_back(
    kafka_url: str, kafka_bootstrap: str, schema_registry_url: str, registry: Any,
    unique: Callable[[str], str],
) -> None:
    name = unique("avro-interop")
    serializer = AvroSerializer(registry, json.dumps(ORDER_SCHEMA))
    ctx = SerializationContext(name, MessageField.VALUE)
    written = {"id": "c1", "items": [{"sku": "fig", "quantity": 2}], "placed_at": PLACED,
               "amount": Decimal("9.99"), "tags": {"by": "confluent"}, "note": "hi"}
    produce(kafka_bootstrap, name, serializer(written, ctx))

    app = new_app(unique, kafka_url, schema_registry_url)
    topic = app.topic(name, value_type=Order, partitions=1)
    order = await read_with_fluvial(app, topic)
    assert isinstance(order, Order)
    assert order.items == [Item("fig", 2)] and order.placed_at == PLACED
    assert order.amount == Decimal("9.99") and order.note == "hi"

    back_name = unique("avro-back")
    app = new_app(unique, kafka_url, schema_registry_url)
    await send_with_fluvial(app, app.topic(back_name, value_type=Order, partitions=1), order)
    read = AvroDeserializer(registry)(consume_one(kafka_bootstrap, back_name),
                                      SerializationContext(back_name, MessageField.VALUE))
    assert read == {**written, "amount": Decimal("9.990000000")}


async def test_json_schema_from_confluent_to_fluvial_and_back(
    kafka_url: str, kafka_bootstrap: str, schema_registry_url: str, registry: Any,
    unique: Callable[[str], str],
) -> None:
    name = unique("json-interop")
    serializer = JSONSerializer(json.dumps(json_schema_of(Payment)), registry)
    written = {"order_id": "c1", "amount": 4.5, "items": [{"sku": "kiwi", "quantity": 5}]}
    produce(kafka_bootstrap, name, serializer(written, SerializationContext(name,
                                                                           MessageField.VALUE)))
    app = new_app(unique, kafka_url, schema_registry_url)
    payment = await read_with_fluvial(app, app.topic(name, value_type=Payment, partitions=1))
    assert payment == Payment(order_id="c1", amount=4.5, items=[Item("kiwi", 5)])

    back_name = unique("json-back")
    app = new_app(unique, kafka_url, schema_registry_url)
    await send_with_fluvial(app, app.topic(back_name, value_type=Payment, partitions=1),
                            payment)
    read = JSONDeserializer(None, schema_registry_client=registry)(
        consume_one(kafka_bootstrap, back_name),
        SerializationContext(back_name, MessageField.VALUE))
    assert read == {**written, "memo": None}


async def test_protobuf_from_confluent_to_fluvial_and_back(
    kafka_url: str, kafka_bootstrap: str, schema_registry_url: str, registry: Any,
    unique: Callable[[str], str],
) -> None:
    name = unique("proto-interop")
    serializer = ProtobufSerializer(Reading, registry, {"use.deprecated.format": False})
    produce(kafka_bootstrap, name, serializer(Reading(sensor="t1", value=21.5),
                                              SerializationContext(name, MessageField.VALUE)))
    app = new_app(unique, kafka_url, schema_registry_url)
    reading = await read_with_fluvial(
        app, app.topic(name, value_type=Reading, value_serializer="protobuf", partitions=1))
    assert (reading.sensor, reading.value) == ("t1", 21.5)

    back_name = unique("proto-back")
    app = new_app(unique, kafka_url, schema_registry_url)
    await send_with_fluvial(app, app.topic(back_name, value_type=Reading,
                                           value_serializer="protobuf", partitions=1),
                            Reading(sensor="t2", value=-3.0))
    read = ProtobufDeserializer(Reading, {"use.deprecated.format": False})(
        consume_one(kafka_bootstrap, back_name),
        SerializationContext(back_name, MessageField.VALUE))
    assert (read.sensor, read.value) == ("t2", -3.0)


def test_fluvial_derives_the_schema_confluent_checks_against() -> None:
    """fluvial's Order schema reads data written with the hand-written one (field by field)."""
    derived = avro_schema_of(Order)
    assert [f["name"] for f in derived["fields"]] == [f["name"] for f in ORDER_SCHEMA["fields"]]
