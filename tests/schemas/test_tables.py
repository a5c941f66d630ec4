"""Avro Records through group_by and in a table: repartition topic and changelog in Avro."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fluvial as faust

from .conftest import eventually
from .messages import Item, Order


def build(name: str, topic_name: str, broker_url: str, registry_url: str
          ) -> tuple[faust.App, Any, Any]:
    app = faust.App(name, broker=broker_url, topic_partitions=2, broker_commit_interval=0.2,
                    schema_registry_url=registry_url)
    topic = app.topic(topic_name, value_type=Order, partitions=2)
    latest = app.Table("latest_order", value_type=Order)

    @app.agent(topic)
    async def keep(orders: faust.Stream[Order]) -> None:
        async for order in orders.group_by(lambda o: o.tags["customer"], name="customer"):
            latest[order.tags["customer"]] = order

    return app, topic, latest


async def test_group_by_and_a_table_of_avro_records_restore_after_restart(
    broker_url: str, schema_registry_url: str, registry: Any, unique: Callable[[str], str]
) -> None:
    from .test_codecs import ORDER

    name, topic_name = unique("latest"), unique("orders")
    orders = [ORDER.derive(id=f"o{i}", tags={"customer": f"c{i % 3}"}) for i in range(9)]
    app, topic, latest = build(name, topic_name, broker_url, schema_registry_url)
    async with app.running():
        for order in orders:
            await topic.send(key=order.id, value=order)
        await eventually(lambda: len(latest) == 3, message="an order per customer")
        await eventually(lambda: app.conductor.events_received >= 18, message="all events")
        await app.conductor.checkpoints.checkpoint()
        before = dict(latest.items())
    for customer, order in before.items():
        assert isinstance(order, Order) and order in orders
        assert order.tags == {"customer": customer}
    subjects = set(registry.get_subjects())
    # The repartition topic is named after the agent, as in Faust (``<locals>`` made valid).
    agent = next(iter(app.agents)).replace("<locals>", "_locals_")
    assert f"{agent}-{topic_name}-customer-repartition-value" in subjects
    assert f"{name}-latest_order-changelog-value" in subjects

    app2, _topic2, latest2 = build(name, topic_name, broker_url, schema_registry_url)
    async with app2.running():
        await eventually(lambda: dict(latest2.items()) == before, message="the table restored")
        restored = latest2["c2"]
        assert isinstance(restored, Order) and restored.items[0] == Item("apple", 3)
