"""Shared types and the Protocols at fluvial's seams (transport, store, clock).

A transport moves *bytes*; everything above it (codecs, streams, tables)
works on :class:`Message` batches. Both transports — the in-process
``memory://`` broker and ``kafka://`` on librdkafka — implement the
Protocols below and pass one contract test suite.

Faust's ``faust.types`` paths resolve here too: ``ModelT``, and the
submodules :mod:`.enums` (``ProcessingGuarantee``) and :mod:`.settings`
(``Settings``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

__all__ = [
    "TP",
    "ConsumerT",
    "ModelT",
    "GroupMember",
    "Headers",
    "Message",
    "ProducerT",
    "RebalanceCallback",
    "RecordMetadata",
    "SharedMessage",
    "TopicSpec",
    "TransactionalProducerT",
    "TransportT",
    "by_partition",
]

Headers = list[tuple[str, bytes]]


class TP(NamedTuple):
    """A topic partition."""

    topic: str
    partition: int


class RecordMetadata(NamedTuple):
    """Where a produced message landed."""

    topic: str
    partition: int
    offset: int
    timestamp: float


class Message:
    """One record as read from a topic partition.

    ``timestamp`` is in seconds since the epoch (Kafka's milliseconds / 1000).

    Acknowledgement: the runtime calls :meth:`hold` on a fetched message once
    per stream that receives it; each stream calls :meth:`release` when done. A
    message nobody holds any more is :attr:`acked`: its offset may be
    committed. :meth:`never_commit` keeps it unacknowledged for good (the
    worker stops on it).

    What a stream reads: the conductor decodes ``key`` and ``value`` (bytes)
    into :attr:`decoded_key` and :attr:`decoded_value` and queues the message
    itself; the :class:`~fluvial.events.Event` user code may ask for is made
    from them on demand. :attr:`event` is ``None`` but for a message queued
    with the event a caller built (``Channel.put``).
    """

    __slots__ = (
        "_holds",
        "decoded_key",
        "decoded_value",
        "event",
        "headers",
        "key",
        "offset",
        "partition",
        "timestamp",
        "topic",
        "value",
    )

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: float,
        headers: Headers | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.headers: Headers = headers if headers is not None else []
        self._holds: int | float = 0
        self.event: Any = None
        # ``decoded_key`` and ``decoded_value``: set before the message is queued
        # for a stream (never read before).
        self.decoded_key: Any
        self.decoded_value: Any

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)

    @property
    def origin(self) -> Message:
        """The fetched message whose offset acknowledging this one acknowledges: itself
        (a :class:`SharedMessage` gives the one it shares)."""
        return self

    def hold(self, streams: int = 1) -> None:
        """``streams`` more streams must process this message before it is acknowledged."""
        self._holds += streams

    def release(self, streams: int = 1) -> bool:
        """``streams`` streams are done with it; True when none holds it any more.

        The decoded key and value are let go then: the tracker keeps the message
        until its offset is committed, and would keep them alive as long.
        """
        holds = self._holds = self._holds - streams
        if holds <= 0:
            self.decoded_key = self.decoded_value = None
            return True
        return False

    def never_commit(self) -> None:
        """Keep it unacknowledged for good: its offset is never committed, and a
        restarted worker reads it again (the worker stops on it)."""
        self._holds = math.inf

    @staticmethod
    def hold_all(messages: Iterable[Message], streams: int) -> None:
        """:meth:`hold` each of ``messages`` (a fetched batch), in one call."""
        for message in messages:
            message._holds += streams

    @staticmethod
    def acked_prefix(messages: Iterable[Message]) -> int:
        """How many of ``messages`` (a partition's, in offset order) are :attr:`acked`
        before the first that is not, in one call."""
        count = 0
        for message in messages:
            if message._holds > 0:
                break
            count += 1
        return count

    @property
    def acked(self) -> bool:
        """Processed by every stream that received it: its offset may be committed."""
        return self._holds <= 0

    @property
    def holders(self) -> int:
        """How many streams still hold it (one for a message :meth:`never_commit` keeps)."""
        holds = self._holds
        return 1 if holds == math.inf else max(int(holds), 0)

    def __repr__(self) -> str:
        return (
            f"<Message {self.topic}[{self.partition}]@{self.offset} "
            f"key={self.key!r} value={self.value!r}>"
        )


class SharedMessage(Message):
    """A fetched message delivered once more with its own decoded key and value
    and its own event: to a second ``Topic`` object reading the topic (another
    schema), or moved on by a combined or joined stream (a value a ``map`` step
    changed). Position, bytes, timestamp and headers are the message's, and
    :meth:`hold`/:meth:`release` are the message's (its offset is the one tracked).
    """

    __slots__ = ("_origin",)

    def __init__(self, message: Message) -> None:
        origin = message.origin
        self._origin = origin
        self.topic = origin.topic
        self.partition = origin.partition
        self.offset = origin.offset
        self.key = origin.key
        self.value = origin.value
        self.event = None

    @property
    def origin(self) -> Message:
        return self._origin

    @property
    def timestamp(self) -> float:
        return self._origin.timestamp

    @timestamp.setter
    def timestamp(self, value: float) -> None:
        self._origin.timestamp = value

    @property
    def headers(self) -> Headers:
        return self._origin.headers

    @headers.setter
    def headers(self, value: Headers) -> None:
        self._origin.headers = value

    def hold(self, streams: int = 1) -> None:
        self._origin.hold(streams)

    def release(self, streams: int = 1) -> bool:
        return self._origin.release(streams)

    def never_commit(self) -> None:
        self._origin.never_commit()

    @property
    def acked(self) -> bool:
        return self._origin.acked

    @property
    def holders(self) -> int:
        return self._origin.holders


def by_partition(messages: list[Message]) -> dict[TP, list[Message]]:
    """A fetched batch split per topic partition, each run in offset order."""
    runs: dict[TP, list[Message]] = {}
    for message in messages:
        runs.setdefault(TP(message.topic, message.partition), []).append(message)
    return runs


class TopicSpec(NamedTuple):
    """What a topic must look like when it is declared."""

    name: str
    partitions: int
    replicas: int = 1
    config: Mapping[str, str] = {}


class GroupMember(NamedTuple):
    """One member of a consumer group, as the group coordinator describes it."""

    member_id: str
    client_id: str
    host: str
    #: The partitions of the group's current generation assigned to it.
    assignment: frozenset[TP]


RebalanceCallback = Callable[[set[TP]], Awaitable[None]]


class ProducerT(Protocol):
    """Sends bytes to topics. ``send`` only enqueues; ``flush`` waits for delivery."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Flush what is pending and release the producer (idempotent)."""

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
        """Enqueue a message; the future resolves on the event loop once delivered.

        Without ``partition`` a keyed message goes to ``murmur2(key) % n``
        (Kafka's default partitioner) and an unkeyed one to any partition.
        """

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
        """Enqueue without a future; a delivery failure is raised by the next ``flush``."""

    async def flush(self) -> None:
        """Wait until every enqueued message is delivered.

        Raises :class:`~fluvial.exceptions.ProducerError` if any message sent
        since the previous flush failed.
        """

    def mark(self) -> int:
        """The sequence number of the last message enqueued so far (a count of all
        the messages enqueued); see :meth:`wait_delivered`."""

    async def wait_delivered(self, seq: int) -> None:
        """Wait until every message up to sequence number ``seq`` is delivered, not
        for the ones enqueued after it; raise failures as :meth:`flush` does."""


class TransactionalProducerT(ProducerT, Protocol):
    """A producer whose sends and source offsets commit atomically (exactly-once).

    While no transaction is open (between ``commit_transaction`` and the next
    ``begin_transaction``) sends are held and go into the next transaction.
    Fencing raises :class:`~fluvial.exceptions.ProducerFenced`.
    """

    async def init_transactions(self) -> None:
        """Register the transactional id, fencing (and aborting) any predecessor's."""

    async def begin_transaction(self) -> None: ...

    async def send_offsets_to_transaction(self, offsets: Mapping[TP, int],
                                          group_metadata: Any) -> None:
        """Commit ``offsets`` of the group described by ``group_metadata`` with the transaction."""

    def prepare_commit(self) -> None:
        """Sends from now on belong to the next transaction (the one to commit is closed)."""

    async def commit_transaction(self) -> None: ...

    async def abort_transaction(self) -> None:
        """Abort the open transaction (best effort on a fenced producer)."""

    async def renew(self, transactional_id: str) -> None:
        """Drop the (fenced) client and make a fresh one with ``transactional_id``.

        Whoever holds this producer keeps using it; call ``init_transactions`` next.
        """


class ConsumerT(Protocol):
    """Reads batches of messages, either as a group member or by manual assignment."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Leave the group and release the consumer (idempotent)."""

    def subscribe(
        self,
        topics: Iterable[str],
        *,
        on_assign: RebalanceCallback,
        on_revoke: RebalanceCallback,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        """Join the consumer group for ``topics`` (may be called again to change them).

        ``on_revoke`` runs (and completes) before partitions are taken away;
        ``on_assign`` runs before the first message of a new partition is
        returned. ``on_lost`` runs when the partitions were taken away already:
        the group dropped this member (stalled past its session timeout), so
        their new owners may be processing them and nothing may be committed
        for them (without ``on_lost``, ``on_revoke`` is told). All run on the
        event loop.
        """

    def assign(self, offsets: Mapping[TP, int]) -> None:
        """Read exactly these partitions from these offsets (no group)."""

    def assignment(self) -> set[TP]: ...

    async def getmany(self, max_records: int, timeout: float) -> list[Message]:
        """Return up to ``max_records`` messages, waiting at most ``timeout`` seconds."""

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        """Commit ``offsets`` (the next offset to read) for the group."""

    async def committed(self, tps: Iterable[TP]) -> dict[TP, int | None]: ...

    async def position(self, tps: Iterable[TP]) -> dict[TP, int | None]:
        """The next offset this consumer will read (past skipped transaction markers)."""

    async def group_metadata(self) -> Any:
        """The group's generation and member id, for ``send_offsets_to_transaction``."""

    async def end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The high-water mark (offset after the last message) of each partition."""

    async def beginning_offsets(self, tps: Iterable[TP]) -> dict[TP, int]: ...

    def seek(self, tp: TP, offset: int) -> None: ...

    def pause(self, tps: Iterable[TP]) -> None: ...

    def resume(self, tps: Iterable[TP]) -> None: ...


class TransportT(Protocol):
    """A broker: makes producers and consumers, declares and describes topics."""

    url: str
    #: True when the broker lives inside this process (shown in the banner).
    in_process: bool

    async def start(self) -> None:
        """Check the broker is reachable; raise BrokerUnreachable otherwise."""

    async def stop(self) -> None: ...

    def create_producer(self, **config: Any) -> ProducerT: ...

    def create_transactional_producer(self, transactional_id: str,
                                      **config: Any) -> TransactionalProducerT: ...

    def create_consumer(
        self,
        group_id: str | None,
        *,
        auto_offset_reset: str = "earliest",
        client_id: str = "fluvial",
        **config: Any,
    ) -> ConsumerT: ...

    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create missing topics; existing ones are checked, not altered.

        Raises :class:`~fluvial.exceptions.PartitionCountMismatch` when an
        existing topic's partition count differs from its spec.
        """

    def declare_now(self, specs: Sequence[TopicSpec], *, check: bool = True) -> bool:
        """Create the missing topics at once if this transport can without waiting
        (its broker is in this process); ``check=False`` leaves existing topics
        unchecked. False: nothing done, :meth:`create_topics` is the way."""

    async def partition_counts(self, topics: Iterable[str]) -> dict[str, int | None]:
        """Partition count per topic, ``None`` where the topic does not exist."""

    async def describe_group(self, group_id: str) -> list[GroupMember]:
        """The members of a consumer group and their assignments (empty: no such group)."""

    async def open_transactions(self, tps: Iterable[TP]) -> set[TP]:
        """The partitions on which a transaction is still open (their last stable offset
        is below their high-water mark): a ``read_committed`` reader sees none of
        the records after its first record, committed or not, until it ends."""


def __getattr__(name: str) -> Any:
    """``ModelT``: the base class of models (imported on first use: models import types)."""
    if name == "ModelT":
        from ..models.record import Record

        return Record
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
