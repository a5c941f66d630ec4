"""Schema evolution: compatible changes read old data; incompatible ones stop at once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

import fluvial as faust
from fluvial.schemas import SchemaIncompatible

from .conftest import eventually


def order_v1() -> type[faust.Record]:
    class Order(faust.Record, serializer="avro", namespace="shop.Order"):
        id: str
        amount: float

    return Order


def order_v2() -> type[faust.Record]:
    """v1 plus a field with a default: backward compatible."""

    class Order(faust.Record, serializer="avro", namespace="shop.Order"):
        id: str
        amount: float
        currency: str = "EUR"

    return Order


def order_v3() -> type[faust.Record]:
    """v1 plus a field without default: old data cannot be read, incompatible."""

    class Order(faust.Record, serializer="avro", namespace="shop.Order"):
        id: str
        amount: float
        customer: str

    return Order


async def read_all(app: faust.App, topic: faust.Topic[Any], count: int,
                   send: list[Any] = ()) -> list[Any]:  # type: ignore[assignment]
    seen: list[Any] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[Any]) -> None:
        async for value in stream:
            seen.append(value)

    async with app.running():
        for value in send:
            await topic.send(value=value)
        await eventually(lambda: len(seen) >= count, message=f"{count} orders")
    return seen


@pytest.fixture
def setup(broker_url: str, schema_registry_url: str, registry: Any,
          unique: Callable[[str], str]) -> Callable[[type[faust.Record]], tuple[Any, Any]]:
    name = unique("evolving-orders")

    def make(model: type[faust.Record]) -> tuple[faust.App, faust.Topic[Any]]:
        app = faust.App(f"evolution-{uuid.uuid4().hex[:8]}", broker=broker_url,
                        schema_registry_url=schema_registry_url, broker_commit_interval=0.2)
        return app, app.topic(name, value_type=model, partitions=1)

    return make


async def test_a_field_with_a_default_is_accepted_and_old_data_reads_into_it(
    setup: Callable[[type[faust.Record]], tuple[Any, Any]], registry: Any
) -> None:
    v1, v2 = order_v1(), order_v2()
    app, topic = setup(v1)
    await read_all(app, topic, 1, send=[v1(id="o1", amount=5.0)])
    subject = f"{topic.get_topic_name()}-value"
    # Apicurio's default compatibility is NONE; Confluent's is BACKWARD.
    registry.set_compatibility(subject_name=subject, level="BACKWARD")

    app, topic = setup(v2)
    seen = await read_all(app, topic, 2, send=[v2(id="o2", amount=6.0, currency="USD")])
    assert seen == [v2(id="o1", amount=5.0, currency="EUR"),
                    v2(id="o2", amount=6.0, currency="USD")]
    assert registry.get_versions(subject) == [1, 2]


async def test_an_incompatible_change_stops_the_worker_at_start_with_the_verdict(
    setup: Callable[[type[faust.Record]], tuple[Any, Any]], registry: Any
) -> None:
    v1 = order_v1()
    app, topic = setup(v1)
    await read_all(app, topic, 1, send=[v1(id="o1", amount=5.0)])
    subject = f"{topic.get_topic_name()}-value"
    registry.set_compatibility(subject_name=subject, level="BACKWARD")

    app, topic = setup(order_v3())
    seen: list[Any] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[Any]) -> None:
        async for value in stream:
            seen.append(value)

    with pytest.raises(SchemaIncompatible, match=f"subject '{subject}'.*HTTP 409") as info:
        async with app.running():
            pass
    assert "incompatible" in str(info.value).lower()
    assert seen == []  # no event was processed under the refused schema
    assert registry.get_versions(subject) == [1]


async def test_an_incompatible_change_fails_the_first_send_of_a_later_topic(
    setup: Callable[[type[faust.Record]], tuple[Any, Any]], registry: Any,
    schema_registry_url: str, broker_url: str, unique: Callable[[str], str],
) -> None:
    v1 = order_v1()
    app, topic = setup(v1)
    await read_all(app, topic, 1, send=[v1(id="o1", amount=5.0)])
    subject = f"{topic.get_topic_name()}-value"
    registry.set_compatibility(subject_name=subject, level="BACKWARD")

    v3 = order_v3()
    app = faust.App(unique("late"), broker=broker_url, schema_registry_url=schema_registry_url)
    async with app.running():
        late = app.topic(topic.get_topic_name(), value_type=v3)  # not known at start-up
        with pytest.raises(SchemaIncompatible, match=f"subject '{subject}'"):
            await late.send(value=v3(id="o9", amount=1.0, customer="c"))
