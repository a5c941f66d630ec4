"""``fluvial send`` encodes with the topic's schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

import fluvial as faust
from fluvial.cli import State, cli
from fluvial.schemas import avro_schema_of
from fluvial.transport.memory import MemoryBroker

from .messages import Item


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
