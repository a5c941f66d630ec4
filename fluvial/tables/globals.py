"""Global tables: every worker holds every partition and keeps it current.

A worker writes the partitions of a global table that it owns (those of its
assigned stream partitions), like any table. The other partitions it *tails*:
one consumer per worker reads their changelogs continuously and applies what
the owners write. When ownership moves in a rebalance, a partition switches
between the two without losing its local data.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..types import TP, ConsumerT, by_partition
from .recovery import isolation

if TYPE_CHECKING:
    from ..app import App
    from .table import Table

__all__ = ["GlobalTailer"]

logger = logging.getLogger(__name__)

BATCH = 10_000


class GlobalTailer:
    """Applies the changelogs of the global-table partitions this worker does not own."""

    def __init__(self, app: App, tables: list[Table]) -> None:
        self.app = app
        self.tables = tables
        self.owned: set[int] = set()
        self._tailing: dict[TP, tuple[Table, int]] = {}
        self._consumer: ConsumerT | None = None
        self._task: asyncio.Task[None] | None = None
        #: Changelog records applied so far (for tests and metrics).
        self.applied = 0

    @property
    def tailing(self) -> set[TP]:
        return set(self._tailing)

    async def start(self) -> None:
        if self._consumer is None:
            self._consumer = self.app.transport.create_consumer(
                None, client_id=f"{self.app.conf.id}-global", **isolation(self.app))
            await self._consumer.start()
            self._reassign()
            self._task = asyncio.ensure_future(self._run())

    def set_owned(self, owned: set[int]) -> None:
        """This worker now writes these partitions; it tails the others."""
        self.owned = set(owned)
        if self._consumer is not None:
            self._reassign()

    def _reassign(self) -> None:
        assert self._consumer is not None
        tailing: dict[TP, tuple[Table, int]] = {}
        offsets: dict[TP, int] = {}
        for table in self.tables:
            for partition in range(table.partitions):
                if partition in self.owned:
                    continue
                tp = TP(table.changelog_topic_name, partition)
                done = table.open_partition(partition).changelog_offset
                tailing[tp] = (table, partition)
                offsets[tp] = 0 if done is None else done + 1
        self._tailing = tailing
        self._consumer.assign(offsets)

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while True:
            batch = await consumer.getmany(BATCH, 0.5)
            if not batch:
                continue
            for tp, messages in by_partition(batch).items():
                target = self._tailing.get(tp)
                if target is None:
                    continue  # owned now (or gone): its recovery reads from the store's offset
                table, partition = target
                table.apply_changelog(partition, messages)
                self.applied += len(messages)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
