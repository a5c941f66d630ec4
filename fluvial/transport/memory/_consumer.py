"""The consumer of the ``memory://`` broker: group member or manual assignment."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple

from ...exceptions import CommitError, GroupMembershipLost, ImproperlyConfigured, TransportError
from ...types import TP, Message, RebalanceCallback
from ._broker import Group, MemoryBroker, PartitionLog, Waker, build_messages

__all__ = ["MemoryConsumer"]

AUTO_OFFSET_RESETS = ("earliest", "latest")


class GroupMetadata(NamedTuple):
    """What ``send_offsets_to_transaction`` needs to tell a zombie from the owner."""

    group_id: str
    member_id: str
    generation: int


class MemoryConsumer:
    """Satisfies :class:`~fluvial.types.ConsumerT`.

    As a group member (``subscribe``) a background task owned by this consumer
    follows the group's generations with Kafka's eager protocol: ``on_revoke``
    of every owner completes before any member's ``on_assign`` runs, and
    ``getmany`` returns nothing while this member is rebalancing. Paused
    partitions are un-paused by a rebalance, as in Kafka.
    """

    def __init__(
        self, broker: MemoryBroker, group_id: str | None, auto_offset_reset: str, client_id: str
    ) -> None:
        if auto_offset_reset not in AUTO_OFFSET_RESETS:
            raise ImproperlyConfigured(
                f"auto_offset_reset must be 'earliest' or 'latest', not {auto_offset_reset!r}"
            )
        self._broker = broker
        self._group_id = group_id
        self._auto_offset_reset = auto_offset_reset
        self._member_id = broker.new_member_id(client_id)
        self._client_id = client_id
        self._group: Group | None = None
        self._topics: frozenset[str] = frozenset()
        self._on_assign: RebalanceCallback | None = None
        self._on_revoke: RebalanceCallback | None = None
        self._on_lost: RebalanceCallback | None = None
        #: Dropped by the coordinator; ``on_lost`` not told yet.
        self._expelled = False
        self._manual = False
        self._started = False
        self._stopped = False
        #: In stop(), between its start and the revoke callback's end (commits still allowed).
        self._closing = False
        self._joined = False
        #: Assigned partitions in fetch order, with their logs and read positions.
        self._logs: dict[TP, PartitionLog] = {}
        self._positions: dict[TP, int] = {}
        self._paused: set[TP] = set()
        self._next_tp = 0  # where the next fetch starts, for fairness between partitions
        self._fetchable = False
        self._holding = False
        self._generation = 0
        self._failure: BaseException | None = None
        self._fetch_waker: Waker | None = None
        self._group_waker: Waker | None = None
        self._coordinator: asyncio.Task[None] | None = None

    # -- Member (what the group coordinator sees) -----------------------------------------

    @property
    def member_id(self) -> str:
        return self._member_id

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def topics(self) -> frozenset[str]:
        return self._topics

    @property
    def holding(self) -> bool:
        return self._holding

    def may_commit(self, tps: Collection[TP], generation: int) -> bool:
        return (self._joined and generation == self._generation
                and all(tp in self._logs for tp in tps))

    def group_changed(self) -> None:
        if self._group_waker is not None:
            self._group_waker.wake()

    def expelled(self) -> None:
        self._joined = False
        self._expelled = True
        self._fetchable = False
        self.group_changed()

    def expire_session(self) -> None:
        """Act as if this member missed its session timeout (a frozen worker): the
        group drops it and hands its partitions to the others at once; this
        consumer then tells ``on_lost`` (else ``on_revoke``) and re-joins. For
        fault tests on the in-process broker."""
        if self._group is None or not self._joined:
            raise TransportError("This consumer is not a member of a group")
        self._broker.expire(self._group, self._member_id)

    # -- lifetime -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._stopped:
            raise TransportError("This consumer was stopped; create a new one")
        if self._started:
            return
        self._started = True
        self._fetch_waker = Waker()
        self._group_waker = Waker()
        if self._topics:
            self._join()
        elif self._manual:
            self._fetchable = True

    async def stop(self) -> None:
        if self._stopped or self._closing:
            return
        self._closing = True
        self._fetchable = False
        coordinator, self._coordinator = self._coordinator, None
        if coordinator is not None and coordinator is not asyncio.current_task():
            coordinator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await coordinator
        try:
            # Like closing a Kafka consumer: the owner hears that its partitions go.
            if self._holding and self._on_revoke is not None:
                await self._on_revoke(set(self._logs))
        finally:
            # Stopped only now: like a Kafka consumer's close(), the revoke callback
            # above may still commit its offsets.
            self._stopped = True
            self._leave_group()
            self._set_assignment({})
            if self._fetch_waker is not None:
                self._fetch_waker.wake()

    # -- group membership -----------------------------------------------------------------

    def subscribe(
        self,
        topics: Iterable[str],
        *,
        on_assign: RebalanceCallback,
        on_revoke: RebalanceCallback,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        if self._manual:
            raise TransportError("This consumer uses assign(); a consumer cannot also subscribe")
        if self._group_id is None:
            raise ImproperlyConfigured("subscribe() needs a consumer created with a group_id")
        self._check_open()
        topics = frozenset(topics)
        if not topics:
            raise ImproperlyConfigured("subscribe() needs at least one topic")
        self._topics = topics
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._on_lost = on_lost
        if self._started:
            self._join()

    def _join(self) -> None:
        assert self._group_id is not None  # checked by subscribe()
        self._group = self._broker.group(self._group_id)
        if self._coordinator is None:
            self._coordinator = asyncio.get_running_loop().create_task(
                self._coordinate(), name=f"memory-consumer-{self._member_id}"
            )
        self._joined = True
        self._broker.join(self._group, self)

    def _leave_group(self) -> None:
        if self._group is not None and self._joined:
            self._joined = False
            self._holding = False
            self._broker.revoked(self._group, self._member_id)
            self._broker.leave(self._group, self._member_id)

    async def _coordinate(self) -> None:
        group, waker = self._group, self._group_waker
        assert group is not None and waker is not None
        try:
            while True:
                waker.clear()
                if self._expelled:
                    await self._lose(group)
                elif self._generation != group.generation:
                    await self._rebalance(group, waker)
                else:
                    await waker.wait(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            # Never die silently: the next getmany() raises it. Leaving the group
            # keeps the other members from waiting for this one forever.
            self._failure = exc
            self._fetchable = False
            self._leave_group()
            if self._fetch_waker is not None:
                self._fetch_waker.wake()

    async def _lose(self, group: Group) -> None:
        """Dropped from the group: the partitions are gone already; tell, re-join."""
        assert self._on_revoke is not None
        self._expelled = False
        lost = set(self._logs)
        self._set_assignment({})
        self._holding = False
        callback = self._on_lost or self._on_revoke
        if lost:
            await callback(lost)
        if not self._stopped:
            self._joined = True
            self._broker.join(group, self)

    async def _rebalance(self, group: Group, waker: Waker) -> None:
        assert self._on_assign is not None and self._on_revoke is not None
        while self._generation != group.generation:
            self._fetchable = False
            if self._holding:
                await self._on_revoke(set(self._logs))
                self._set_assignment({})
                self._holding = False
                self._broker.revoked(group, self._member_id)
            while group.revoking:  # eager protocol: everyone gives back first
                waker.clear()
                await waker.wait(None)
            self._generation = group.generation
            assigned = group.assignment.get(self._member_id, frozenset())
            self._set_assignment({tp: self._start_position(group, tp) for tp in sorted(assigned)})
            self._holding = True
            # on_assign may seek(); positions are in place before it runs.
            await self._on_assign(set(assigned))
        self._fetchable = True
        if self._fetch_waker is not None:
            self._fetch_waker.wake()

    def _start_position(self, group: Group, tp: TP) -> int:
        committed = group.committed.get(tp)
        if committed is not None:
            return committed
        return self._reset_position(tp)

    def _reset_position(self, tp: TP) -> int:
        if self._auto_offset_reset == "earliest":
            return 0
        return len(self._broker.log(tp))

    # -- manual assignment ----------------------------------------------------------------

    def assign(self, offsets: Mapping[TP, int]) -> None:
        if self._topics:
            raise TransportError("This consumer subscribed to topics; it cannot also assign()")
        self._check_open()
        self._manual = True
        self._set_assignment({TP(*tp): offset for tp, offset in offsets.items()})
        if self._started:
            self._fetchable = True
            if self._fetch_waker is not None:
                self._fetch_waker.wake()

    def _set_assignment(self, positions: Mapping[TP, int]) -> None:
        self._logs = {tp: self._broker.log(tp) for tp in positions}
        self._positions = dict(positions)
        self._paused.clear()
        self._next_tp = 0

    def assignment(self) -> set[TP]:
        return set(self._logs)

    # -- fetching -------------------------------------------------------------------------

    async def getmany(self, max_records: int, timeout: float) -> list[Message]:
        self._check_running()
        # Yield even when data is ready, so a tight fetch loop cannot starve the loop.
        await asyncio.sleep(0)
        batch = self._fetch(max_records)
        if batch or timeout <= 0:
            return batch
        waker = self._fetch_waker
        assert waker is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._check_running()
            waker.clear()
            logs = list(self._logs.values())
            for log in logs:
                log.waiters.add(waker)
            try:
                await waker.wait(deadline - loop.time())
            finally:
                for log in logs:
                    log.waiters.discard(waker)
            batch = self._fetch(max_records)
            if batch or self._stopped or loop.time() >= deadline:
                return batch

    def _fetch(self, max_records: int) -> list[Message]:
        batch: list[Message] = []
        if not self._fetchable or not self._logs:
            return batch
        items = list(self._logs.items())
        count = len(items)
        first = self._next_tp % count
        positions, paused = self._positions, self._paused
        for i in range(count):
            tp, log = items[(first + i) % count]
            if tp in paused:
                continue
            position, end = positions[tp], len(log)
            if not 0 <= position <= end:  # Kafka: OFFSET_OUT_OF_RANGE -> auto_offset_reset
                position = positions[tp] = self._reset_position(tp)
            if position == end:
                continue
            stop = min(end, position + max_records - len(batch))
            batch += build_messages(tp.topic, tp.partition, position, log.read(position, stop))
            positions[tp] = stop
            if len(batch) >= max_records:
                self._next_tp = first + i + 1
                break
        else:
            self._next_tp = first + 1
        return batch

    def seek(self, tp: TP, offset: int) -> None:
        tp = TP(*tp)
        if tp not in self._logs:
            raise TransportError(f"Cannot seek {tp}: it is not assigned to this consumer")
        self._positions[tp] = offset
        if self._fetch_waker is not None:
            self._fetch_waker.wake()

    def pause(self, tps: Iterable[TP]) -> None:
        # Partitions no longer assigned are ignored: a rebalance may have taken them.
        self._paused.update(tp for tp in tps if tp in self._logs)

    def resume(self, tps: Iterable[TP]) -> None:
        self._paused.difference_update(tps)
        if self._fetch_waker is not None:
            self._fetch_waker.wake()

    # -- offsets --------------------------------------------------------------------------

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        self._check_running()
        group = self._broker.group(self._require_group("commit"))
        if self._topics:
            stale = [tp for tp in offsets if tp not in self._logs]
            if stale:
                raise CommitError(
                    f"Cannot commit {sorted(stale)}: not assigned to this member any more "
                    "(revoked by a rebalance); commit in on_revoke instead"
                )
        for tp, offset in offsets.items():
            if offset < 0:
                raise CommitError(f"Cannot commit negative offset {offset} for {tp}")
            group.committed[TP(*tp)] = offset
        await asyncio.sleep(0)

    async def committed(self, tps: Iterable[TP]) -> dict[TP, int | None]:
        group = self._broker.group(self._require_group("committed"))
        return {TP(*tp): group.committed.get(tp) for tp in tps}

    async def position(self, tps: Iterable[TP]) -> dict[TP, int | None]:
        return {TP(*tp): self._positions.get(TP(*tp)) for tp in tps}

    async def group_metadata(self) -> GroupMetadata:
        if self._group_id is not None and not self._joined and not self._manual:
            raise GroupMembershipLost(
                f"The consumer is no member of group {self._group_id!r} (dropped from it, "
                "not re-joined yet)")
        return GroupMetadata(self._require_group("group_metadata"), self._member_id,
                             self._generation)

    async def end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        return {TP(*tp): len(self._broker.log(tp)) for tp in tps}

    async def beginning_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        beginnings: dict[TP, int] = {}
        for tp in tps:
            self._broker.log(tp)  # raises for an unknown partition, as Kafka does
            beginnings[TP(*tp)] = 0  # nothing is ever deleted: every log starts at 0
        return beginnings

    # -- checks ---------------------------------------------------------------------------

    def _require_group(self, what: str) -> str:
        if self._group_id is None:
            raise ImproperlyConfigured(f"{what}() needs a consumer created with a group_id")
        return self._group_id

    def _check_open(self) -> None:
        if self._stopped:
            raise TransportError("This consumer was stopped; create a new one")

    def _check_running(self) -> None:
        if self._failure is not None:
            raise TransportError(
                f"Consumer {self._member_id} left its group: a rebalance callback failed"
            ) from self._failure
        self._check_open()
        if not self._started:
            raise TransportError("Consumer not started: call `await consumer.start()` first")
