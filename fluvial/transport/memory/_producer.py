"""The producer of the ``memory://`` broker: appends to partition logs synchronously."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from ...exceptions import (
    ImproperlyConfigured,
    ProducerError,
    ProducerFenced,
    SerializationError,
    TransportError,
)
from ...types import TP, Headers, RecordMetadata
from ..partitioner import partition_for_key
from ._broker import MemoryBroker, PartitionLog, Record

__all__ = ["Clock", "MemoryProducer", "TransactionalMemoryProducer"]


class Clock(Protocol):
    """Where message timestamps come from when the producer gives none."""

    def time(self) -> float: ...


class MemoryProducer:
    """Satisfies :class:`~fluvial.types.ProducerT`.

    Delivery is synchronous: ``send`` appends to the log and returns a future
    that is already resolved with the offset. Each call does a bounded amount
    of work, and ``flush`` yields to the loop, so producers stay loop-fair.
    """

    def __init__(self, broker: MemoryBroker, clock: Clock, auto_create_partitions: int) -> None:
        self._broker = broker
        self._clock = clock
        self._auto_create_partitions = auto_create_partitions
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._stopped = False
        self._round_robin: dict[str, int] = {}
        self._errors: list[ProducerError] = []

    async def start(self) -> None:
        if self._stopped:
            raise TransportError("This producer was stopped; create a new one")
        self._loop = asyncio.get_running_loop()
        self._running = True

    async def stop(self) -> None:
        if self._stopped:
            return
        self._running = False
        self._stopped = True
        self._errors.clear()

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        if self._loop is None or not self._running:
            raise self._not_running()
        future: asyncio.Future[RecordMetadata] = self._loop.create_future()
        try:
            partition, offset, timestamp = self._append(
                topic, key, value, partition, timestamp, headers
            )
        except ProducerError as exc:
            future.set_exception(exc)
        else:
            future.set_result(RecordMetadata(topic, partition, offset, timestamp))
        return future

    def send_soon(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | None = None,
    ) -> None:
        if not self._running:
            raise self._not_running()
        try:
            self._append(topic, key, value, partition, timestamp, headers)
        except ProducerError as exc:
            self._errors.append(exc)

    async def flush(self) -> None:
        if not self._running:
            raise self._not_running()
        # Everything is delivered already; yielding keeps `flush` a scheduling point.
        await asyncio.sleep(0)
        if self._errors:
            first, count = self._errors[0], len(self._errors)
            self._errors.clear()
            if count == 1:
                raise first
            raise ProducerError(f"{count} messages could not be delivered; first: {first}") from (
                first
            )

    def mark(self) -> int:
        """Every message is delivered as it is sent: nothing to count."""
        return 0

    async def wait_delivered(self, seq: int) -> None:
        """Delivered already (see :meth:`mark`); raises the failures as ``flush`` does."""
        await self.flush()

    def _append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Headers | None,
    ) -> tuple[int, int, float]:
        """Append one message; return its partition, offset and timestamp."""
        log, partition, record = self._place(topic, key, value, partition, timestamp, headers)
        return partition, log.append(record), record[2]

    def _place(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Headers | None,
    ) -> tuple[PartitionLog, int, Record]:
        """Where one message goes and what is stored: (log, partition, record)."""
        # The broker stores bytes so that codecs run exactly as with Kafka.
        if key is not None and type(key) is not bytes:
            key = _as_bytes(key, "key", topic)
        if value is not None and type(value) is not bytes:
            value = _as_bytes(value, "value", topic)
        logs = self._broker.topics.get(topic)
        if logs is None:
            logs = self._auto_create(topic)
        if partition is None:
            if key is not None:
                partition = partition_for_key(key, len(logs))
            else:
                partition = self._round_robin.get(topic, -1) + 1
                if partition >= len(logs):
                    partition = 0
                self._round_robin[topic] = partition
        elif not 0 <= partition < len(logs):
            raise ProducerError(
                f"Cannot send to partition {partition} of topic {topic!r}: "
                f"it has {len(logs)} partitions (0..{len(logs) - 1})"
            )
        # Kafka keeps millisecond timestamps; so does the memory broker.
        timestamp = (
            round((self._clock.time() if timestamp is None else timestamp) * 1000.0) / 1000.0
        )
        record = (key, value, timestamp, tuple(headers) if headers else None)
        return logs[partition], partition, record

    def _auto_create(self, topic: str) -> list[PartitionLog]:
        # Like a Kafka broker with auto.create.topics.enable=true (its default):
        # the first message creates the topic with the default partition count.
        try:
            return self._broker.create_topic(topic, self._auto_create_partitions)
        except ImproperlyConfigured as exc:
            raise ProducerError(f"Cannot create topic {topic!r} on first send: {exc}") from exc

    def _not_running(self) -> TransportError:
        if self._stopped:
            return TransportError("This producer was stopped; create a new one")
        return TransportError("Producer not started: call `await producer.start()` first")


def _as_bytes(data: object, what: str, topic: str) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)  # copied: the caller may reuse its buffer
    raise SerializationError(
        f"The {what} sent to topic {topic!r} is {type(data).__name__}, not bytes: "
        "encode it with a codec (the broker, like Kafka, only stores bytes)"
    )


# A send held in an open transaction: (log, partition, record, future or None).
_Held = tuple[str, PartitionLog, int, Record, "asyncio.Future[RecordMetadata] | None"]


class TransactionalMemoryProducer(MemoryProducer):
    """Satisfies :class:`~fluvial.types.TransactionalProducerT` on the memory broker.

    A transaction buffers its sends and source offsets and applies them at
    once at commit (abort drops them): consumers never see uncommitted
    records, as ``read_committed`` consumers on Kafka. A send's future
    resolves when its transaction commits. ``init_transactions`` bumps the
    transactional id's epoch, fencing older producers of the same id; a commit
    whose group metadata is stale (the member lost the partitions) is fenced
    too.
    """

    def __init__(self, broker: MemoryBroker, clock: Clock, auto_create_partitions: int,
                 transactional_id: str) -> None:
        super().__init__(broker, clock, auto_create_partitions)
        self.transactional_id = transactional_id
        self._epoch: int | None = None
        self._held: list[_Held] = []
        #: The sends of the transaction being committed (see ``prepare_commit``).
        self._closing: list[_Held] | None = None
        self._offsets: dict[TP, int] = {}
        self._group: Any = None

    async def init_transactions(self) -> None:
        epochs = self._broker.transactional_epochs
        self._epoch = epochs[self.transactional_id] = epochs.get(self.transactional_id, 0) + 1
        await asyncio.sleep(0)

    async def begin_transaction(self) -> None:
        self._check_epoch()

    def send(self, topic: str, key: bytes | None, value: bytes | None, *,
             partition: int | None = None, timestamp: float | None = None,
             headers: Headers | None = None) -> asyncio.Future[RecordMetadata]:
        if self._loop is None or not self._running:
            raise self._not_running()
        future: asyncio.Future[RecordMetadata] = self._loop.create_future()
        try:
            log, partition, record = self._place(topic, key, value, partition, timestamp,
                                                 headers)
        except ProducerError as exc:
            future.set_exception(exc)
        else:
            self._held.append((topic, log, partition, record, future))
        return future

    def send_soon(self, topic: str, key: bytes | None, value: bytes | None, *,
                  partition: int | None = None, timestamp: float | None = None,
                  headers: Headers | None = None) -> None:
        if not self._running:
            raise self._not_running()
        try:
            log, partition, record = self._place(topic, key, value, partition, timestamp,
                                                 headers)
        except ProducerError as exc:
            self._errors.append(exc)
        else:
            self._held.append((topic, log, partition, record, None))

    async def send_offsets_to_transaction(self, offsets: Mapping[TP, int],
                                          group_metadata: Any) -> None:
        self._check_epoch()
        self._offsets.update(offsets)
        self._group = group_metadata

    def prepare_commit(self) -> None:
        if self._closing is None:
            self._closing, self._held = self._held, []
        else:
            self._closing += self._held
            self._held = []

    async def commit_transaction(self) -> None:
        await asyncio.sleep(0)
        self.prepare_commit()
        held, self._closing = self._closing or [], None
        offsets, self._offsets = self._offsets, {}
        meta, self._group = self._group, None
        self._check_epoch()
        if offsets:
            group = self._broker.group(meta.group_id)
            member = group.members.get(meta.member_id)
            if member is None or not member.may_commit(list(offsets), meta.generation):
                raise ProducerFenced(
                    f"Transaction of {self.transactional_id!r} fenced: member "
                    f"{meta.member_id} of generation {meta.generation} no longer owns "
                    "the partitions it commits (the group moved on without it)"
                )
        # Everything below is synchronous: the transaction becomes visible at once.
        for topic, log, partition, record, future in held:
            offset = log.append(record)
            if future is not None and not future.done():
                future.set_result(RecordMetadata(topic, partition, offset, record[2]))
        if offsets:
            self._broker.group(meta.group_id).committed.update(offsets)

    async def abort_transaction(self) -> None:
        held, self._held = (self._closing or []) + self._held, []
        self._closing = None
        self._offsets.clear()
        self._group = None
        for *_, future in held:
            if future is not None:
                future.cancel()  # never delivered; nobody need handle an error
        await asyncio.sleep(0)

    async def renew(self, transactional_id: str) -> None:
        self.transactional_id = transactional_id
        self._epoch = None
        self._held.clear()
        self._closing = None
        self._offsets.clear()
        self._group = None
        await asyncio.sleep(0)

    def _check_epoch(self) -> None:
        if self._epoch is None:
            raise TransportError("Call init_transactions() before using transactions")
        if self._broker.transactional_epochs.get(self.transactional_id) != self._epoch:
            raise ProducerFenced(
                f"Producer of transactional id {self.transactional_id!r} was fenced by a "
                "newer producer with the same id"
            )
