"""Standby replicas: warm copies of other workers' table partitions.

With ``table_standby_replicas=N`` (Faust's setting, default 1) each
partition of a (non-global) table is kept current on up to N workers besides
its owner. Every worker computes the same placement from the membership view
(:mod:`fluvial.runtime.membership`, refreshed after each rebalance and every
few seconds) with :func:`standby_placement`, a pure function, and tails the
changelog partitions it is standby for into the table's partition stores.
Those stores record their changelog offset as they apply records (RocksDB
writes it in the same batch), so when a standby partition becomes this
worker's, recovery replays only the records after it. A partition that
stops being standby is released: its store is closed (RocksDB data stays on
disk, and is caught up from its offset if it comes back).

A partition revoked from this worker is kept as a standby store until the
next view decides: an eager rebalance that gives it back costs nothing.
Standby records go through ``Table.apply_changelog`` as recovery does (so a
table's ``on_changelog_event`` hears them too); reads of the table never see
standby partitions.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..types import TP, ConsumerT, by_partition

if TYPE_CHECKING:
    from ..app import App
    from ..runtime.membership import GroupView
    from .table import Table

__all__ = ["StandbyReplicas", "standby_placement"]

logger = logging.getLogger(__name__)

BATCH = 10_000


def standby_placement(owners: Mapping[int, str], members: Iterable[str],
                      replicas: int) -> dict[int, tuple[str, ...]]:
    """Partition -> the members that hold a standby of it, in ring order.

    Members are sorted by their stable id into a ring; the standbys of
    partition ``p`` are the ``replicas`` members after ``p``'s owner, never
    the owner itself (fewer when the group is small). Every worker computes
    the same placement from the same view.
    """
    ring = sorted(set(members))
    n = len(ring)
    placement: dict[int, tuple[str, ...]] = {}
    for partition, owner in owners.items():
        if owner in ring:
            start, count = ring.index(owner) + 1, min(replicas, n - 1)
        else:  # not a member (a stale view): the members after its place in the ring
            start, count = bisect.bisect_right(ring, owner), min(replicas, n)
        placement[partition] = tuple(ring[(start + k) % n] for k in range(max(count, 0)))
    return placement


class StandbyReplicas:
    """Tails the changelog partitions this worker is standby for (one consumer)."""

    def __init__(self, app: App, tables: list[Table]) -> None:
        self.app = app
        self.tables = tables
        self.replicas = app.conf.table_standby_replicas
        #: Partition numbers this worker is standby for.
        self.partitions: set[int] = set()
        self._active: set[int] = set()
        self._tailing: dict[TP, tuple[Table, int]] = {}
        self._consumer: ConsumerT | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        #: Changelog records applied so far (for tests and metrics).
        self.applied = 0
        #: While paused, nothing is applied (maintenance and tests).
        self.paused = False

    # -- placement ------------------------------------------------------------------

    async def on_view(self, view: GroupView) -> None:
        """A new membership view: take up and release standby partitions."""
        if self._stopped:
            return
        me = view.me(self.app.conf.canonical_url, self.app.assigned_partitions())
        if me is None:
            return
        owners = view.partition_owners()
        placement = standby_placement(owners, view.keys, self.replicas)
        wanted = {p for p, holders in placement.items() if me.key in holders}
        # A partition nobody owns right now (a rebalance) keeps its standby store.
        held = {p for table in self.tables for p in table.standby_partitions}
        wanted |= {p for p in held | self.partitions if p not in owners}
        await self.set_partitions(wanted)

    async def set_partitions(self, wanted: set[int]) -> None:
        """Hold exactly these partition numbers as standbys (minus the active ones)."""
        wanted = wanted - self._active
        if wanted != self.partitions:
            logger.info("Standby for partitions %s (was %s)", sorted(wanted),
                        sorted(self.partitions))
        self.partitions = wanted
        for table in self.tables:
            # Stores of active partitions are being taken over by recovery: not ours.
            for partition in table.standby_partitions - wanted - self._active:
                table.release_standby(partition)
            for partition in sorted(wanted):
                if partition < table.partitions:
                    table.open_standby(partition)
        if wanted and self._consumer is None:
            consumer = self.app.transport.create_consumer(
                None, client_id=f"{self.app.conf.id}-standby",
                **({"isolation_level": "read_committed"} if self.app.conf.exactly_once
                   else {}))
            await consumer.start()
            if self._stopped:
                await consumer.stop()
                return
            self._consumer = consumer
            self._task = asyncio.ensure_future(self._run())
        self._reassign()

    def set_active(self, active: set[int]) -> None:
        """This worker now owns these partitions: they are not tailed any more."""
        self._active = set(active)
        if self.partitions & self._active:
            self.partitions -= self._active
            self._reassign()

    def _reassign(self) -> None:
        tailing: dict[TP, tuple[Table, int]] = {}
        offsets: dict[TP, int] = {}
        for table in self.tables:
            for partition in self.partitions:
                store = table.standby_data(partition)
                if store is None:
                    continue
                tp = TP(table.changelog_topic_name, partition)
                tailing[tp] = (table, partition)
                done = store.changelog_offset
                offsets[tp] = 0 if done is None else done + 1
        self._tailing = tailing
        if self._consumer is not None:
            self._consumer.assign(offsets)

    async def lag(self) -> dict[TP, int]:
        """Changelog records each standby partition is behind its changelog's end."""
        consumer, tailing = self._consumer, dict(self._tailing)
        if consumer is None or not tailing:
            return {}
        ends = await consumer.end_offsets(tailing)
        lag: dict[TP, int] = {}
        for tp, (table, partition) in tailing.items():
            store = table.standby_data(partition)
            done = store.changelog_offset if store is not None else None
            lag[tp] = max(ends.get(tp, 0) - (0 if done is None else done + 1), 0)
        return lag

    # -- tailing --------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._tail()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The worker goes on: a partition taken over later is recovered from
            # its store's offset as usual, only less of it was done beforehand.
            logger.exception("Standby replicas stopped tailing")

    async def _tail(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            if self.paused:
                await asyncio.sleep(0.1)
                continue
            batch = await consumer.getmany(BATCH, 0.5)
            if not batch or self.paused:
                if batch:
                    self._reassign()  # fetched while pausing: read again from the stores
                continue
            for tp, messages in by_partition(batch).items():
                target = self._tailing.get(tp)
                if target is None:
                    continue  # active now (or released): recovery reads from the store
                table, partition = target
                store = table.standby_data(partition)
                if store is None:
                    continue
                done = store.changelog_offset
                if done is not None and messages[0].offset <= done:
                    messages = [m for m in messages if m.offset > done]
                if messages:
                    table.apply_changelog(partition, messages)
                    self.applied += len(messages)

    async def stop(self) -> None:
        """Stop tailing and close every standby store (idempotent)."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        self.partitions = set()
        for table in self.tables:
            for partition in table.standby_partitions:
                table.release_standby(partition)
