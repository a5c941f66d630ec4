"""``memory://``: an in-process broker with Kafka's semantics.

For the quick start, unit tests and the test driver. It stores bytes, so
codecs run exactly as with Kafka, and it keeps Kafka's model: topics with
partitions, per-partition append-only logs with offsets, keys, headers,
millisecond timestamps (the producer's, or the transport clock's now),
consumer groups with committed offsets and the ``range`` assignor
(co-partitioning), the eager rebalance protocol (``on_revoke`` of every owner
completes before any ``on_assign``), ``auto_offset_reset`` (also on an
out-of-range position), manual ``assign``, ``seek``, ``pause``/``resume``.

Behaviour worth knowing:

- **One process only.** Brokers live in this process and on its event loop;
  nothing is persisted or shared with other processes.
- **Process-global per URL.** ``memory://`` and ``memory://NAME`` are
  different brokers; two transports with the same name share topics, groups
  and committed offsets (a restarted App finds its offsets and changelogs).
  ``MemoryBroker.reset(url)`` forgets a broker; tests may instead use a
  fresh name such as ``memory://test-<uuid>``.
- **Auto-create on produce.** Like a Kafka broker with its default
  ``auto.create.topics.enable=true``, sending to a missing topic creates it
  with ``partitions`` partitions (``memory://?partitions=8``; default 1).
  Subscribing does not create topics: the group is assigned a topic's
  partitions once it exists. Reading or seeking an unknown partition fails.
- **Keyed placement** is Kafka's murmur2 (:func:`~fluvial.transport.partitioner.partition_for_key`),
  so a key lands in the same partition as with Kafka; unkeyed messages
  without a partition go round-robin per producer and topic.
- **Delivery is synchronous:** ``send`` returns an already-resolved future.
- **Rebalance callbacks** run in a task owned by the consumer (started by
  ``start``, ended by ``stop``), like the Kafka bridge's poll thread; a member
  that does not return from ``on_revoke`` holds up its whole group, as on
  Kafka until ``max.poll.interval.ms``. A member that stops revokes its
  partitions (``on_revoke``) and leaves. Committing a partition that is no
  longer assigned raises :class:`~fluvial.exceptions.CommitError`, as a
  commit from an old generation does on Kafka.
- **Transactions** (exactly-once) buffer their sends and offsets and apply
  them at commit, so every consumer reads only committed records (there are
  no aborted records or markers in a memory log).
- Kafka client settings passed as ``**config`` are accepted and ignored.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from ...exceptions import ImproperlyConfigured, PartitionCountMismatch
from ...types import TP, GroupMember, TopicSpec
from ._broker import MemoryBroker, check_topic, range_assign, url_params
from ._consumer import MemoryConsumer
from ._producer import Clock, MemoryProducer, TransactionalMemoryProducer

__all__ = [
    "Clock",
    "MemoryBroker",
    "MemoryConsumer",
    "MemoryProducer",
    "MemoryTransport",
    "range_assign",
]


class MemoryTransport:
    """Satisfies :class:`~fluvial.types.TransportT` for ``memory://[NAME][?partitions=N]``.

    ``clock`` (anything with ``time() -> float``) stamps messages sent without
    a timestamp; give a virtual clock to control event time in tests.
    """

    in_process = True

    def __init__(self, url: str = "memory://", *, clock: Clock | None = None) -> None:
        params = url_params(url)
        self.url = url
        self.broker = MemoryBroker.for_url(url)
        self.clock: Clock = clock if clock is not None else time
        self.auto_create_partitions = _positive_int(params.get("partitions", "1"), url)
        self._producers: list[MemoryProducer] = []
        self._consumers: list[MemoryConsumer] = []

    async def start(self) -> None:
        """Nothing to reach: the broker is in this process."""

    async def stop(self) -> None:
        """Stop the producers and consumers this transport made (idempotent)."""
        consumers, self._consumers = self._consumers, []
        producers, self._producers = self._producers, []
        for consumer in consumers:
            await consumer.stop()
        for producer in producers:
            await producer.stop()

    def create_producer(self, **config: Any) -> MemoryProducer:
        producer = MemoryProducer(self.broker, self.clock, self.auto_create_partitions)
        self._producers.append(producer)
        return producer

    def create_transactional_producer(self, transactional_id: str,
                                      **config: Any) -> TransactionalMemoryProducer:
        producer = TransactionalMemoryProducer(self.broker, self.clock,
                                               self.auto_create_partitions, transactional_id)
        self._producers.append(producer)
        return producer

    def create_consumer(
        self,
        group_id: str | None,
        *,
        auto_offset_reset: str = "earliest",
        client_id: str = "fluvial",
        **config: Any,
    ) -> MemoryConsumer:
        consumer = MemoryConsumer(self.broker, group_id, auto_offset_reset, client_id)
        self._consumers.append(consumer)
        return consumer

    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        self.declare_now(specs)

    def declare_now(self, specs: Sequence[TopicSpec], *, check: bool = True) -> bool:
        """:meth:`create_topics`, synchronously (the broker is in this process)."""
        # Check every spec before creating any, so a mismatch changes nothing.
        missing: dict[str, int] = {}
        for spec in specs:
            check_topic(spec.name, spec.partitions)
            logs = self.broker.topics.get(spec.name)
            if logs is None:
                missing[spec.name] = spec.partitions
            elif check and len(logs) != spec.partitions:
                raise PartitionCountMismatch(
                    f"Topic {spec.name!r} has {len(logs)} partitions but {spec.partitions} "
                    f"are needed: declare it with partitions={len(logs)}, or delete it "
                    f"(reset the memory broker) to recreate it with {spec.partitions}"
                )
        for name, partitions in missing.items():
            self.broker.create_topic(name, partitions)
        return True

    async def partition_counts(self, topics: Iterable[str]) -> dict[str, int | None]:
        counts: dict[str, int | None] = {}
        for topic in topics:
            logs = self.broker.topics.get(topic)
            counts[topic] = None if logs is None else len(logs)
        return counts

    async def open_transactions(self, tps: Iterable[TP]) -> set[TP]:
        """None: a transaction's records reach the logs only when it commits."""
        return set()

    async def describe_group(self, group_id: str) -> list[GroupMember]:
        """The group's members and the current generation's assignment."""
        group = self.broker.groups.get(group_id)
        if group is None:
            return []
        return [
            GroupMember(member_id, member.client_id, "/127.0.0.1",
                        group.assignment.get(member_id, frozenset()))
            for member_id, member in sorted(group.members.items())
        ]

    def __repr__(self) -> str:
        return f"<MemoryTransport {self.url}>"


def _positive_int(text: str, url: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ImproperlyConfigured(
            f"partitions must be a positive integer in {url!r}, not {text!r}"
        )
    return value
