"""Fixtures for app-level tests: every test runs on memory:// and on real Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return f"memory://test-{uuid.uuid4().hex[:8]}"
    url: str = request.getfixturevalue("kafka_url")
    return url


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Unique topic/app names, so tests never share state on a real broker."""
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
