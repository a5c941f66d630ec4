"""Fixtures for the transport contract suite: one ``transport`` per broker kind.

``memory`` runs everywhere; ``kafka`` (marked ``kafka``) uses the session's
real broker from ``kafka_bootstrap`` in ``tests/conftest.py``. Every test uses
fresh topic and group names, so tests do not interfere on a shared broker.
Kafka rebalances take seconds: helpers wait for conditions with deadlines.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import pytest
import pytest_asyncio

from fluvial.transport import by_url
from fluvial.transport.memory import MemoryBroker
from fluvial.types import TP, ConsumerT, Message, ProducerT, TopicSpec, TransportT

#: How long a Kafka group may take to (re)balance or a batch to arrive.
DEADLINE_S = 30.0


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("kafka", id="kafka", marks=pytest.mark.kafka),
    ]
)
def transport_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "memory":
        url = f"memory://test-{uuid.uuid4().hex}"
        yield url
        MemoryBroker.reset(url)
        return
    pytest.importorskip(
        "fluvial.transport.kafka", reason="fluvial.transport.kafka is not written yet"
    )
    try:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py provides no kafka_bootstrap fixture yet")
    yield "kafka://" + bootstrap


@pytest_asyncio.fixture(loop_scope="function")
async def transport(transport_url: str) -> AsyncIterator[TransportT]:
    transport = by_url(transport_url)
    await transport.start()
    try:
        yield transport
    finally:
        await transport.stop()


class Kit:
    """Makes unique names and started clients for one test, and stops the clients after it."""

    def __init__(self, transport: TransportT) -> None:
        self.transport = transport
        self._clients: list[ProducerT | ConsumerT] = []

    @staticmethod
    def name(prefix: str = "t") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    async def topics(self, *partitions: int) -> list[str]:
        """Create one fresh topic per partition count given; return their names."""
        names = [self.name("topic") for _ in partitions]
        specs = [TopicSpec(name, count) for name, count in zip(names, partitions, strict=True)]
        await self.transport.create_topics(specs)
        return names

    async def producer(self) -> ProducerT:
        producer = self.transport.create_producer()
        await producer.start()
        self._clients.append(producer)
        return producer

    async def fill(self, topic: str, count: int) -> None:
        """Write ``count`` messages ``b"0"``, ``b"1"``, ... to ``topic`` and wait for them."""
        producer = await self.producer()
        for i in range(count):
            producer.send_soon(topic, None, b"%d" % i)
        await producer.flush()

    async def consumer(self, group_id: str | None = None, **config: Any) -> ConsumerT:
        consumer = self.transport.create_consumer(group_id, **config)
        await consumer.start()
        self._clients.append(consumer)
        return consumer

    async def close(self) -> None:
        for client in reversed(self._clients):
            await client.stop()


@pytest_asyncio.fixture(loop_scope="function")
async def kit(transport: TransportT) -> AsyncIterator[Kit]:
    kit = Kit(transport)
    try:
        yield kit
    finally:
        await kit.close()


async def drain(consumer: ConsumerT, count: int, timeout: float = DEADLINE_S) -> list[Message]:
    """Read until ``count`` messages arrived; fail if they do not within ``timeout``."""
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(messages) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"received {len(messages)} of {count} messages in {timeout} s")
        messages += await consumer.getmany(max_records=count, timeout=min(remaining, 1.0))
    return messages


async def poll_until(
    consumers: Sequence[ConsumerT],
    condition: Callable[[], bool],
    timeout: float = DEADLINE_S,
) -> list[list[Message]]:
    """Keep every consumer fetching until ``condition()`` holds; return what each received."""
    received: list[list[Message]] = [[] for _ in consumers]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        batches = await asyncio.gather(
            *(consumer.getmany(max_records=1000, timeout=0.2) for consumer in consumers)
        )
        for into, batch in zip(received, batches, strict=True):
            into += batch
    return received


def by_partition(messages: Sequence[Message]) -> dict[TP, list[Message]]:
    grouped: dict[TP, list[Message]] = {}
    for message in messages:
        grouped.setdefault(message.tp, []).append(message)
    return grouped
