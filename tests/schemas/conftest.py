"""Fixtures of the schema codec tests: the test registry, both brokers, unique names."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient


@pytest.fixture
def registry(schema_registry_url: str) -> Any:
    """confluent-kafka's own client of the test registry (to check what fluvial did)."""
    return SchemaRegistryClient({"url": schema_registry_url})


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return f"memory://schemas-{uuid.uuid4().hex[:8]}"
    url: str = request.getfixturevalue("kafka_url")
    return url


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Unique topic/app names: the registry and the broker outlive a test."""
    suffix = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{suffix}"


async def eventually(condition: Callable[[], object], timeout: float = 30.0,
                     message: str = "condition") -> None:
    """Wait until ``condition()`` is true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.01)
