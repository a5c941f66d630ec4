"""The state of one ``memory://`` broker: topic logs, consumer groups, committed offsets.

Brokers are process-global per name, so every transport (and every restarted
App) in the process that names the same broker sees the same topics, groups
and committed offsets.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Collection, Iterable, Mapping
from typing import ClassVar, Protocol
from urllib.parse import parse_qsl, urlsplit

from ...exceptions import ImproperlyConfigured, TransportError
from ...types import TP, Headers, Message

__all__ = [
    "Group",
    "MemoryBroker",
    "PartitionLog",
    "Record",
    "Waker",
    "check_topic",
    "range_assign",
]

#: What a partition log stores per offset: (key, value, timestamp, headers).
#: Tuples, not ``Message`` objects: every reader gets its own ``Message``
#: because a message's acknowledgement (``Message.hold``/``release``) is per-reader bookkeeping.
Record = tuple[bytes | None, bytes | None, float, "tuple[tuple[str, bytes], ...] | None"]

# Kafka's rule for topic names (kafka.common.internals.Topic).
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


class Waker:
    """A level-triggered wake-up for one waiter on the loop that created it."""

    __slots__ = ("_event", "_loop")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def wake(self) -> None:
        # A broker outlives event loops (one per test); a client left behind on a
        # closed loop must not break the clients of the next one.
        if not self._loop.is_closed():
            self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, timeout: float | None) -> None:
        """Wait until woken or ``timeout`` seconds passed (``None``: no limit)."""
        if self._event.is_set():
            return
        if timeout is None:
            await self._event.wait()
            return
        # call_later is cheaper than wait_for, which wraps the wait in a task.
        handle = self._loop.call_later(max(timeout, 0.0), self._event.set)
        try:
            await self._event.wait()
        finally:
            handle.cancel()


class PartitionLog:
    """One partition: an append-only sequence of records; ``len(log)`` is the end offset.

    Full segments are sealed into tuples. A tuple of untracked objects drops
    out of the garbage collector's view, so millions of stored records do
    not make every full collection walk them (that made fetching 4x slower).
    """

    __slots__ = ("_base", "_open", "_sealed", "waiters")

    SEGMENT = 4096

    def __init__(self) -> None:
        self._sealed: list[tuple[Record, ...]] = []
        self._open: list[Record] = []
        self._base = 0  # offset of _open[0]
        self.waiters: set[Waker] = set()

    def __len__(self) -> int:
        return self._base + len(self._open)

    def append(self, record: Record) -> int:
        """Append ``record``, wake waiting readers, return its offset."""
        opened = self._open
        opened.append(record)
        offset = self._base + len(opened) - 1
        if len(opened) == self.SEGMENT:
            self._sealed.append(tuple(opened))
            self._open = []
            self._base += self.SEGMENT
        if self.waiters:
            for waker in self.waiters:
                waker.wake()
            self.waiters.clear()
        return offset

    def read(self, start: int, stop: int) -> list[Record]:
        """The records at offsets ``start`` up to ``stop`` (a copy of references)."""
        base = self._base
        if start >= base:
            return self._open[start - base : stop - base]
        records: list[Record] = []
        size, sealed = self.SEGMENT, self._sealed
        while start < stop:
            if start >= base:
                records += self._open[start - base : stop - base]
                break
            segment, index = divmod(start, size)
            end = min(stop, start - index + size)
            records += sealed[segment][index : index + end - start]
            start = end
        return records


class Member(Protocol):
    """What the group coordinator needs from a subscribed consumer."""

    @property
    def member_id(self) -> str: ...

    @property
    def client_id(self) -> str: ...

    @property
    def topics(self) -> frozenset[str]: ...

    @property
    def holding(self) -> bool:
        """True while the member owns partitions of some generation (until on_revoke ends)."""

    def may_commit(self, tps: Collection[TP], generation: int) -> bool:
        """Whether the member of ``generation`` still owns ``tps`` (else it is a zombie)."""

    def group_changed(self) -> None: ...

    def expelled(self) -> None:
        """The coordinator dropped the member (session timeout): its partitions are gone."""


class Group:
    """A consumer group: members, the current generation's assignment, committed offsets."""

    __slots__ = ("assignment", "committed", "generation", "group_id", "members", "revoking")

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.members: dict[str, Member] = {}
        self.generation = 0
        self.assignment: dict[str, frozenset[TP]] = {}
        #: Members that still have to give back partitions before anyone is assigned.
        self.revoking: set[str] = set()
        self.committed: dict[TP, int] = {}


def range_assign(
    subscriptions: Mapping[str, Collection[str]], partition_counts: Mapping[str, int]
) -> dict[str, frozenset[TP]]:
    """Kafka's ``range`` assignor.

    Per topic, the members subscribed to it are sorted by member id and the
    partitions are split into contiguous ranges, the first ``n % m`` members
    taking one extra. Equally-partitioned topics with the same subscribers are
    therefore co-partitioned: a member gets the same partition numbers of each.
    """
    assigned: dict[str, set[TP]] = {member_id: set() for member_id in subscriptions}
    subscribers: dict[str, list[str]] = {}
    for member_id in sorted(subscriptions):
        for topic in subscriptions[member_id]:
            subscribers.setdefault(topic, []).append(member_id)
    for topic, members in subscribers.items():
        count = partition_counts.get(topic, 0)
        per_member, extra = divmod(count, len(members))
        start = 0
        for index, member_id in enumerate(members):
            stop = start + per_member + (1 if index < extra else 0)
            assigned[member_id].update(TP(topic, p) for p in range(start, stop))
            start = stop
    return {member_id: frozenset(tps) for member_id, tps in assigned.items()}


def subscribes(subscription: Collection[str], topic: str) -> bool:
    """Whether a subscription (names, and regular expressions starting with ``^`` as
    Kafka clients take them) covers ``topic``."""
    if topic in subscription:
        return True
    return any(entry.startswith("^") and re.search(entry, topic) for entry in subscription)


class MemoryBroker:
    """One in-process broker. Get it with :meth:`for_url`; forget it with :meth:`reset`."""

    _brokers: ClassVar[dict[str, MemoryBroker]] = {}

    def __init__(self, name: str) -> None:
        self.name = name
        self.topics: dict[str, list[PartitionLog]] = {}
        self.groups: dict[str, Group] = {}
        #: Producer epoch per transactional id: a newer producer fences older ones.
        self.transactional_epochs: dict[str, int] = {}
        self._member_seq = 0

    # -- registry -------------------------------------------------------------------------

    @classmethod
    def for_url(cls, url: str) -> MemoryBroker:
        """The broker named by ``url`` (``memory://`` and ``memory://NAME`` differ)."""
        name = broker_name(url)
        broker = cls._brokers.get(name)
        if broker is None:
            broker = cls._brokers[name] = cls(name)
        return broker

    @classmethod
    def reset(cls, url: str) -> None:
        """Forget the broker named by ``url``: transports made afterwards see an empty one.

        Stop the clients of the old broker first; transports made before the
        reset keep the old broker.
        """
        cls._brokers.pop(broker_name(url), None)

    # -- topics ---------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int) -> list[PartitionLog]:
        check_topic(name, partitions)
        logs = self.topics[name] = [PartitionLog() for _ in range(partitions)]
        for group in self.groups.values():
            if any(subscribes(member.topics, name) for member in group.members.values()):
                self.rebalance(group)
        return logs

    def log(self, tp: TP) -> PartitionLog:
        """The log of ``tp``; TransportError if the topic or partition does not exist."""
        logs = self.topics.get(tp.topic)
        if logs is None:
            raise TransportError(
                f"Unknown topic {tp.topic!r} on broker memory://{self.name}: "
                "declare it with create_topics() or produce to it first"
            )
        if not 0 <= tp.partition < len(logs):
            raise TransportError(
                f"Topic {tp.topic!r} has {len(logs)} partitions; "
                f"partition {tp.partition} does not exist"
            )
        return logs[tp.partition]

    def messages(self, topic: str, partition: int | None = None) -> list[Message]:
        """Every message of ``topic`` (or of one partition), partition by partition.

        For tests and the test driver, which inspect a topic without a consumer.
        """
        logs = self.topics.get(topic, [])
        partitions = range(len(logs)) if partition is None else [partition]
        return [
            message
            for p in partitions
            for message in build_messages(topic, p, 0, _read_all(self.log(TP(topic, p))))
        ]

    # -- groups ---------------------------------------------------------------------------

    def new_member_id(self, client_id: str) -> str:
        # Kafka's member ids are "<client.id>-<uuid>"; a counter keeps the order of
        # members with the same client id deterministic (join order).
        self._member_seq += 1
        return f"{client_id}-{self._member_seq:08d}"

    def group(self, group_id: str) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = Group(group_id)
        return group

    def join(self, group: Group, member: Member) -> None:
        """Add or re-subscribe ``member``; either way the group rebalances."""
        group.members[member.member_id] = member
        self.rebalance(group)

    def leave(self, group: Group, member_id: str) -> None:
        if group.members.pop(member_id, None) is not None:
            self.rebalance(group)

    def expire(self, group: Group, member_id: str) -> None:
        """``member_id`` missed its session timeout: it is dropped from the group and its
        partitions are handed out without waiting for its revoke, as Kafka's
        coordinator does; it hears of it afterwards (``on_lost``) and may re-join."""
        member = group.members.pop(member_id, None)
        if member is None:
            return
        group.revoking.discard(member_id)
        member.expelled()
        self.rebalance(group)

    def rebalance(self, group: Group) -> None:
        """Start a new generation (eager protocol: every owner revokes everything first)."""
        group.generation += 1
        counts = {topic: len(logs) for topic, logs in self.topics.items()}
        group.assignment = range_assign(
            {member_id: [t for t in counts if subscribes(member.topics, t)]
             for member_id, member in group.members.items()}, counts
        )
        group.revoking = {mid for mid, member in group.members.items() if member.holding}
        for member in group.members.values():
            member.group_changed()

    def revoked(self, group: Group, member_id: str) -> None:
        """``member_id`` gave its partitions back; the last one releases the others."""
        group.revoking.discard(member_id)
        if not group.revoking:
            for member in group.members.values():
                member.group_changed()


def build_messages(
    topic: str, partition: int, offset: int, records: Iterable[Record]
) -> list[Message]:
    """Fresh ``Message`` objects for ``records`` starting at ``offset``."""
    return [
        # Headers are stored as a tuple and handed out as a fresh list: readers
        # may mutate theirs.
        Message(topic, partition, off, key, value, ts, list(headers) if headers else None)
        for off, (key, value, ts, headers) in enumerate(records, offset)
    ]


def _read_all(log: PartitionLog) -> list[Record]:
    return log.read(0, len(log))


def check_topic(name: str, partitions: int) -> None:
    """Refuse what Kafka refuses: bad topic names and fewer than one partition."""
    if not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
        raise ImproperlyConfigured(
            f"Invalid topic name {name!r}: use 1-249 characters of "
            "ASCII letters, digits, '.', '_' and '-'"
        )
    if partitions < 1:
        raise ImproperlyConfigured(f"Topic {name!r} needs at least 1 partition, not {partitions}")


def broker_name(url: str) -> str:
    """The broker name in ``memory://NAME?params``."""
    parts = urlsplit(url)
    if parts.scheme != "memory":
        raise ImproperlyConfigured(f"Not a memory:// URL: {url!r}")
    return parts.netloc + parts.path


def url_params(url: str) -> dict[str, str]:
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    unknown = set(params) - {"partitions"}
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown parameter(s) {sorted(unknown)} in {url!r}: memory:// takes only partitions=N"
        )
    return params


def headers_tuple(headers: Headers | None) -> tuple[tuple[str, bytes], ...] | None:
    return tuple(headers) if headers else None
