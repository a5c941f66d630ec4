"""Fixtures of the schema codec tests: the test registry, both brokers, unique names."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from tests.app.conftest import broker_url, eventually, unique

__all__ = ["broker_url", "eventually", "registry", "unique"]


@pytest.fixture
def registry(schema_registry_url: str) -> Any:
    """confluent-kafka's own client of the test registry (to check what fluvial did)."""
    return SchemaRegistryClient({"url": schema_registry_url})
