"""``fluvial send`` encodes with the topic's schema."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

import fluvial as faust
from fluvial.cli import State, cli
from fluvial.schemas import avro_schema_of
from fluvial.transport.memory import MemoryBroker

from .messages import Item

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_send_encodes_json_input_with_the_topics_avro_schema(
    schema_registry_url: str, registry: Any, unique: Callable[[str], str]
) -> None:
    name = unique("cli-items")
    broker = f"memory://{name}"
    app = faust.App(unique("cli"), broker=broker, schema_registry_url=schema_registry_url)
    app.topic(name, value_type=Item, value_serializer="avro")
    result = CliRunner().invoke(cli, ["send", name, '{"sku": "fig", "quantity": 2}'],
                                obj=State(app=app), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [message] = MemoryBroker.for_url(broker).messages(name)
    assert message.value is not None and message.value[0] == 0  # the Confluent magic byte
    decoded = AvroDeserializer(registry)(message.value,
                                         SerializationContext(name, MessageField.VALUE))
    assert decoded == {"sku": "fig", "quantity": 2}
    registered = registry.get_latest_version(f"{name}-value").schema.schema_str
    assert json.loads(registered) == avro_schema_of(Item)


def test_send_input_that_does_not_fit_the_schema_is_a_clear_error(
    schema_registry_url: str, unique: Callable[[str], str]
) -> None:
    name = unique("cli-items")
    app = faust.App(unique("cli"), broker=f"memory://{name}",
                    schema_registry_url=schema_registry_url)
    app.topic(name, value_type=Item, value_serializer="avro")
    result = CliRunner().invoke(cli, ["send", name, '{"quantity": 2}'], obj=State(app=app))
    assert result.exit_code != 0
    assert "cannot encode" in result.output and "no value and no default for sku" in result.output
    assert MemoryBroker.for_url(f"memory://{name}").messages(name) == []


def test_send_to_the_readme_example_with_iso_dates_and_decimal_text(
    schema_registry_url: str, registry: Any, unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = f"memory://{unique('cli-example')}"
    monkeypatch.setenv("FLUVIAL_BROKER", broker)
    monkeypatch.setenv("FLUVIAL_SCHEMA_REGISTRY_URL", schema_registry_url)
    spec = importlib.util.spec_from_file_location(
        f"avro_orders_{unique('m').replace('-', '_')}", EXAMPLES / "avro_orders.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = '{"account_id": "bob", "amount": "5.00", "placed_at": "2026-12-04T10:00:00Z"}'
    result = CliRunner().invoke(cli, ["send", "avro-orders", text],
                                obj=State(app=module.app), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [message] = MemoryBroker.for_url(broker).messages("avro-orders")
    assert message.value is not None
    decoded = AvroDeserializer(registry)(message.value,
                                         SerializationContext("avro-orders", MessageField.VALUE))
    assert decoded == {"account_id": "bob", "amount": Decimal("5.00"), "coupon": None,
                       "placed_at": datetime(2026, 12, 4, 10, tzinfo=timezone.utc)}
