"""Records and protobuf messages through topics with the schema registry codecs."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

import fluvial as faust
from fluvial.exceptions import ImproperlyConfigured, ImproperlyConfiguredCodec
from fluvial.schemas import SchemaNotRegistered, avro, avro_schema_of, json_schema_of

from .conftest import eventually
from .messages import Item, Order, Payment, Reading

ORDER = Order(id="o1", items=[Item("apple", 3), Item("pear")],
              placed_at=datetime(2026, 12, 4, 9, 30, 15, 123456, tzinfo=timezone.utc),
              amount=Decimal("12.50"), tags={"channel": "web"})


async def round_trip(app: faust.App, topic: faust.Topic[Any], values: list[Any],
                     key: Any = None) -> list[tuple[Any, Any]]:
    seen: list[tuple[Any, Any]] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[Any]) -> None:
        async for k, v in stream.items():
            seen.append((k, v))

    async with app.running():
        for value in values:
            await topic.send(key=key, value=value)
        await eventually(lambda: len(seen) == len(values), message="the values back")
    return seen


async def test_avro_records_round_trip_under_the_topic_subject(
    broker_url: str, schema_registry_url: str, registry: Any, unique: Callable[[str], str]
) -> None:
    name = unique("orders")
    app = faust.App(unique("avro"), broker=broker_url, schema_registry_url=schema_registry_url)
    topic = app.topic(name, value_type=Order, partitions=1)
    [(_, back)] = await round_trip(app, topic, [ORDER])
    assert isinstance(back, Order)
    assert back.items == [Item("apple", 3), Item("pear", 1)]
    assert back.placed_at == ORDER.placed_at
    assert back.amount == Decimal("12.50")
    assert back.tags == {"channel": "web"} and back.note is None
    registered = registry.get_latest_version(f"{name}-value")
    assert registered.schema.schema_type == "AVRO"
    assert json.loads(registered.schema.schema_str) == avro_schema_of(Order)
    assert registry.get_versions(f"{name}-value") == [1]  # at start-up, once


async def test_json_schema_records_round_trip(
    broker_url: str, schema_registry_url: str, registry: Any, unique: Callable[[str], str]
) -> None:
    name = unique("payments")
    app = faust.App(unique("jsonschema"), broker=broker_url,
                    schema_registry_url=schema_registry_url)
    topic = app.topic(name, value_type=Payment, partitions=1)
    payment = Payment(order_id="o1", amount=12.5, items=[Item("apple", 3)])
    [(_, back)] = await round_trip(app, topic, [payment])
    assert back == payment and isinstance(back.items[0], Item)
    registered = registry.get_latest_version(f"{name}-value")
    assert registered.schema.schema_type == "JSON"
    assert json.loads(registered.schema.schema_str) == json_schema_of(Payment)
    assert registry.get_versions(f"{name}-value") == [1]


async def test_protobuf_messages_and_avro_keys(
    broker_url: str, schema_registry_url: str, registry: Any, unique: Callable[[str], str]
) -> None:
    name = unique("readings")
    app = faust.App(unique("proto"), broker=broker_url, schema_registry_url=schema_registry_url)
    topic = app.topic(name, key_type=str, key_serializer="avro", value_type=Reading,
                      value_serializer="protobuf", partitions=1)
    seen = await round_trip(app, topic, [Reading(sensor="s1", value=1.5)], key="s1")
    [(key, reading)] = seen
    assert key == "s1"
    assert isinstance(reading, Reading) and (reading.sensor, reading.value) == ("s1", 1.5)
    assert json.loads(registry.get_latest_version(f"{name}-key").schema.schema_str) == {
        "type": "string"}
    assert registry.get_versions(f"{name}-key") == [1]
    assert registry.get_latest_version(f"{name}-value").schema.schema_type == "PROTOBUF"


async def test_record_name_strategy_and_codec_instances(
    schema_registry_url: str, registry: Any, unique: Callable[[str], str]
) -> None:
    name = unique("items")
    app = faust.App(unique("strategy"), broker=f"memory://{name}",
                    schema_registry_url=schema_registry_url,
                    schema_registry_subject_strategy="record")
    topic = app.topic(name, value_type=Item, value_serializer=avro(Item), partitions=1)
    [(_, back)] = await round_trip(app, topic, [Item("fig", 2)])
    assert back == Item("fig", 2)
    assert f"{Item.__module__}.Item" in registry.get_subjects()


async def test_without_auto_registration_an_unregistered_schema_stops_the_start(
    schema_registry_url: str, unique: Callable[[str], str]
) -> None:
    name = unique("strict")
    app = faust.App(unique("strict"), broker=f"memory://{name}",
                    schema_registry_url=schema_registry_url,
                    schema_registry_auto_register=False)
    app.topic(name, value_type=Order)
    with pytest.raises(SchemaNotRegistered, match=f"subject '{name}-value'"):
        async with app.running():
            pass


async def test_without_auto_registration_a_registered_schema_is_used(
    schema_registry_url: str, registry: Any, unique: Callable[[str], str]
) -> None:
    from confluent_kafka.schema_registry import Schema

    name = unique("preregistered")
    registry.register_schema(f"{name}-value", Schema(json.dumps(avro_schema_of(Order)), "AVRO"))
    app = faust.App(unique("strict"), broker=f"memory://{name}",
                    schema_registry_url=schema_registry_url,
                    schema_registry_auto_register=False)
    topic = app.topic(name, value_type=Order, partitions=1)
    [(_, back)] = await round_trip(app, topic, [ORDER])
    assert back.id == ORDER.id


def test_the_codec_alone_says_it_needs_a_topic() -> None:
    with pytest.raises(ImproperlyConfiguredCodec, match="send through a topic"):
        ORDER.dumps()


async def test_a_schema_codec_without_registry_url_is_a_clear_error(
    unique: Callable[[str], str]
) -> None:
    app = faust.App(unique("nourl"), broker="memory://")
    topic = app.topic(unique("t"), value_type=Order)
    with pytest.raises(ImproperlyConfigured, match="schema_registry_url is not set"):
        async with app.running():
            await topic.send(value=ORDER)
