"""Bad schema registry input is a decode error under the topic's decode_error_policy;
an unreachable registry is a clear error, never a dead-lettered good message."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

import fluvial as faust
from fluvial.exceptions import WorkerStopped
from fluvial.schemas import SchemaRegistryUnavailable, avro_schema_of
from fluvial.testing.schema_registry import SchemaRegistryServer
from fluvial.types import TP

from .conftest import eventually
from .messages import Item

NO_MAGIC = b'{"sku": "fig", "quantity": 1}'
UNKNOWN_ID = b"\x00" + (987_654_321).to_bytes(4, "big") + b"\x06fig\x02"


def item_schema_id(registry: Any, subject: str) -> int:
    return int(registry.get_latest_version(subject).schema_id)


async def read_dead_letters(app: faust.App, count: int) -> list[faust.Message]:
    dlq = app.conf.dead_letter_topic_name
    consumer = app.transport.create_consumer(None)
    await consumer.start()
    dead: list[faust.Message] = []
    try:
        consumer.assign({TP(dlq, p): 0 for p in range(app.conf.topic_partitions)})
        for _ in range(300):
            dead += await consumer.getmany(10, 0.1)
            if len(dead) >= count:
                break
    finally:
        await consumer.stop()
    return sorted(dead, key=lambda m: dict(m.headers)["fluvial-source"])


async def test_bad_payloads_are_dead_lettered_with_their_bytes_and_good_ones_go_on(
    broker_url: str, schema_registry_url: str, registry: Any, unique: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = unique("items")
    app = faust.App(unique("bad-input"), broker=broker_url, broker_commit_interval=0.2,
                    schema_registry_url=schema_registry_url, decode_error_policy="dead_letter",
                    topic_partitions=1)
    topic = app.topic(name, value_type=Item, value_serializer="avro", partitions=1)
    seen: list[Item] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[Item]) -> None:
        async for item in stream:
            seen.append(item)

    with caplog.at_level(logging.ERROR):
        async with app.running():
            schema_id = item_schema_id(registry, f"{name}-value")
            # The right schema id, but a body its schema cannot read (a truncated string).
            mismatch = b"\x00" + schema_id.to_bytes(4, "big") + b"\x40ab"
            await topic.send(value=Item("apple", 1))
            await app.producer_ready()
            for payload in (NO_MAGIC, UNKNOWN_ID, mismatch):
                app.producer.send_soon(name, None, payload, partition=0)
            await topic.send(value=Item("pear", 2))
            await eventually(lambda: len(seen) == 2, message="the two good items")
            dead = await read_dead_letters(app, 3)
            await app.conductor.checkpoints.checkpoint()
            assert app.conductor.ctx.offsets.committed[TP(name, 0)] == 5
    assert seen == [Item("apple", 1), Item("pear", 2)]
    assert [m.value for m in dead] == [NO_MAGIC, UNKNOWN_ID, mismatch]
    errors = [dict(m.headers)["fluvial-error"].decode() for m in dead]
    assert "not in the Confluent wire format" in errors[0]
    assert "schema id 987654321" in errors[1]
    assert f"schema id {schema_id}" in errors[2] and "does not match its schema" in errors[2]
    logged = [r.getMessage() for r in caplog.records if "Cannot decode" in r.getMessage()]
    assert [f"{name}[0]@{offset}" in line for offset, line in zip((1, 2, 3), logged,
                                                                    strict=True)] == [True] * 3


async def test_skip_policy_skips_a_payload_without_magic_byte(
    schema_registry_url: str, unique: Callable[[str], str]
) -> None:
    name = unique("items")
    app = faust.App(unique("skip"), broker=f"memory://{name}", decode_error_policy="skip",
                    schema_registry_url=schema_registry_url)
    topic = app.topic(name, value_type=Item, value_serializer="avro", partitions=1)
    seen: list[Item] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[Item]) -> None:
        async for item in stream:
            seen.append(item)

    async with app.running():
        await app.producer_ready()
        app.producer.send_soon(name, None, NO_MAGIC, partition=0)
        await topic.send(value=Item("kiwi", 4))
        await eventually(lambda: seen == [Item("kiwi", 4)])
        assert app.conductor.decode_errors == 1 and app.fatal_error is None


async def test_an_unreachable_registry_at_start_is_a_clear_error(
    unique: Callable[[str], str]
) -> None:
    url = "http://127.0.0.1:9/apis/ccompat/v7"  # the discard port: nothing listens
    app = faust.App(unique("down"), broker="memory://", schema_registry_url=url)
    app.topic(unique("items"), value_type=Item, value_serializer="avro")
    with pytest.raises(SchemaRegistryUnavailable, match="cannot reach the schema registry at "
                       r"http://127\.0\.0\.1:9/apis/ccompat/v7 \(after the client's retries\)"):
        async with app.running():
            pass


async def test_a_registry_gone_mid_run_stops_the_worker_instead_of_dead_lettering(
    tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """A schema id fluvial has not seen yet while the registry is down: the message is
    fine, so it is neither skipped nor dead-lettered; the worker stops, uncommitted."""
    with SchemaRegistryServer(tmp_path, cache_dir=Path(__file__).parents[2] / ".schema-registry"
                              ) as server:
        name = unique("items")
        app = faust.App(unique("gone"), broker=f"memory://{name}",
                        schema_registry_url=server.url, decode_error_policy="dead_letter")
        topic = app.topic(name, value_type=Item, value_serializer="avro", partitions=1)

        @app.agent(topic)
        async def read(stream: faust.Stream[Item]) -> None:
            async for _item in stream:
                pass

        # Another writer's schema (a new field with a default): a schema id of its own.
        other = dict(avro_schema_of(Item))
        other["fields"] = [*other["fields"], {"name": "origin", "type": "string",
                                              "default": "elsewhere"}]
        writer = AvroSerializer(SchemaRegistryClient({"url": server.url}), json.dumps(other))
        payload = writer({"sku": "fig", "quantity": 1, "origin": "x"},
                         SerializationContext(name, MessageField.VALUE))
        async with app.running():
            server.stop()
            await app.producer_ready()
            app.producer.send_soon(name, None, payload, partition=0)
            with pytest.raises(WorkerStopped, match="cannot reach the schema registry"):
                await asyncio.wait_for(app.wait_stopped(), 90)
            assert isinstance(app.fatal_error, SchemaRegistryUnavailable)
            assert app.conductor.decode_errors == 0
            assert app.conductor.ctx.offsets.committed.get(TP(name, 0), 0) == 0
