"""The tables of an app: changelog flushing at checkpoints, recovery on assignment
(in the background, see :mod:`fluvial.tables.recovery`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from ..types import TP
from .globals import GlobalTailer
from .recovery import ChangelogReader, RecoveryProgress, Restoring
from .standby import StandbyReplicas

if TYPE_CHECKING:
    from ..app import App
    from .table import Table

__all__ = ["TableManager"]

logger = logging.getLogger(__name__)


class TableManager:
    """``app.tables``: every table by name."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._tables: dict[str, Table] = {}
        #: Changelog records applied by the most recent recovery.
        self.last_restored = 0
        self._reader: ChangelogReader | None = None
        self._on_restored: Callable[[set[int]], Awaitable[None]] | None = None
        self._tailer: GlobalTailer | None = None
        self._owned: set[int] = set()
        self._standby: StandbyReplicas | None = None
        #: Bumped when every partition is discarded: assignments begun before are void.
        self._generation = 0
        #: Whether partitions are handed out by a group (else every write is local).
        self._assigned = False
        #: Partition numbers assigned whose stores are being opened (not readable yet).
        self._opening: set[int] = set()

    def add(self, table: Table) -> Table:
        if table.name in self._tables:
            from ..exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(f"A table named {table.name!r} already exists")
        self._tables[table.name] = table
        return table

    def __getitem__(self, name: str) -> Table:
        return self._tables[name]

    def __iter__(self) -> Iterator[Table]:
        return iter(self._tables.values())

    def __len__(self) -> int:
        return len(self._tables)

    def __contains__(self, name: object) -> bool:
        return name in self._tables

    def values(self) -> list[Table]:
        return list(self._tables.values())

    def flush_changelogs(self) -> int:
        return sum(table.flush_changelog() for table in self._tables.values())

    def report_committed(self) -> None:
        """The checkpoint committed: report the changes it flushed to the tables'
        listeners (see :mod:`.changes`)."""
        for table in self._tables.values():
            table.report_committed()

    def persist(self) -> None:
        """After a successful producer flush: persist every store with its changelog offset."""
        for table in self._tables.values():
            table.persist()

    async def start_global_tailing(self) -> None:
        """Start keeping the global tables' partitions this worker does not own current."""
        tables = [t for t in self._tables.values() if t.is_global]
        if tables and self._tailer is None:
            self._tailer = GlobalTailer(self.app, tables)
            self._tailer.set_owned(self._owned)
            await self._tailer.start()

    async def stop_global_tailing(self) -> None:
        tailer, self._tailer = self._tailer, None
        if tailer is not None:
            await tailer.stop()

    @property
    def global_tailer(self) -> GlobalTailer | None:
        return self._tailer

    @property
    def standby_replicas(self) -> StandbyReplicas | None:
        """The standby replicas this worker keeps, if any."""
        return self._standby

    def recovery_progress(self) -> RecoveryProgress | None:
        """Records restored and left of the recovery under way (None: none)."""
        reader = self._reader
        return reader.progress if reader is not None and reader.partitions else None

    async def start_standby(self) -> None:
        """Keep standby replicas of other workers' partitions (``table_standby_replicas``)."""
        tables = [t for t in self._tables.values() if not t.is_global]
        if tables and self.app.conf.table_standby_replicas > 0 and self._standby is None:
            self._standby = StandbyReplicas(self.app, tables)
            self._standby.set_active(self._owned)
            self.app.membership.listen(self._standby.on_view)

    async def stop_standby(self) -> None:
        standby, self._standby = self._standby, None
        if standby is not None:
            self.app.membership.unlisten(standby.on_view)
            await standby.stop()

    @property
    def standby(self) -> StandbyReplicas | None:
        return self._standby

    def may_write(self, partition: int) -> bool:
        """Whether this worker may write ``partition`` of a table: it owns it, or no
        group hands partitions out (``agent.test_context()``, a script)."""
        return not self._assigned or partition in self._owned

    async def on_partitions_revoked(self, revoked: set[TP], *, clean: bool = True) -> None:
        """Give up table partitions; ``clean=False`` when their last writes were not
        checkpointed (a zombie, a fencing): their stores are dropped, not kept as
        standbys, since they hold writes the changelog does not."""
        partitions = {tp.partition for tp in revoked}
        if self._reader is not None:
            self._reader.cancel(partitions)
        self._owned -= partitions
        for table in self._tables.values():
            if table.is_global:
                continue  # kept, and tailed from now on
            for partition in partitions:
                if self._standby is not None and clean:
                    table.demote_partition(partition)  # a standby until the next view
                else:
                    table.drop_partition(partition)
        if self._tailer is not None:
            self._tailer.set_owned(self._owned)
        if self._standby is not None:
            self._standby.set_active(self._owned)

    async def on_partitions_assigned(
        self, assigned: set[TP], *,
        on_restored: Callable[[set[int]], Awaitable[None]] | None = None,
    ) -> set[int]:
        """Open the assigned table partitions; start recovering those behind their changelog.

        Returns the partition numbers being recovered in the background: the
        caller must not process events of those partitions until
        ``on_restored`` is awaited with them. Without ``on_restored`` (no
        conductor to pause partitions), waits until every partition is restored.
        Until it returns, the assigned partitions count as :attr:`recovering`
        (their changelog ends are being read: a read could see an old value).
        """
        opening = {tp.partition for tp in assigned} - self._opening
        self._opening |= opening
        try:
            return await self._open_assigned(assigned, on_restored)
        finally:
            self._opening -= opening

    async def _open_assigned(
        self, assigned: set[TP],
        on_restored: Callable[[set[int]], Awaitable[None]] | None,
    ) -> set[int]:
        if not self._tables:
            return set()
        partitions = {tp.partition for tp in assigned}
        self._assigned = True
        self._owned |= partitions
        if self._tailer is not None:
            # Stop tailing what this worker now writes; recovery reads the tail.
            self._tailer.set_owned(self._owned)
        if self._standby is not None:
            self._standby.set_active(self._owned)  # a standby store becomes the active one
        wanted: list[tuple[Table, int]] = [
            (table, partition)
            for table in self._tables.values()
            for partition in sorted(partitions)
            if partition < table.partitions
        ]
        if not wanted:
            return set()
        generation = self._generation
        reader = self._reader_for(on_restored)
        changelogs = [TP(t.changelog_topic_name, p) for t, p in wanted]
        # Exactly-once: a changelog partition with an open transaction (its last
        # owner stopped mid-transaction) hides what was committed after it; its
        # end is known only once that transaction ends (see .recovery). Asked
        # before the ends, so that a transaction ending in between is not missed.
        unsettled = (await self.app.transport.open_transactions(changelogs)
                     if self.app.conf.exactly_once else set())
        ends = await reader.end_offsets(changelogs)
        if generation != self._generation or reader is not self._reader:
            return set()  # discard_uncommitted() or stop_recovery() ran meanwhile
        behind: list[Restoring] = []
        for table, partition in wanted:
            done = table.open_partition(partition).changelog_offset
            start = 0 if done is None else done + 1
            tp = TP(table.changelog_topic_name, partition)
            if tp in unsettled:
                behind.append(Restoring(table, partition, start, None))
                continue
            end = ends.get(tp, 0)
            if end > start:
                behind.append(Restoring(table, partition, start, end))
        busy = {r.table for r in behind}
        for table in {t for t, _ in wanted} - busy:
            await table.call_recover_callbacks()
        if not behind:
            return set()
        reader.add(behind)
        if on_restored is None:
            await reader.wait_idle()
            if reader.error is not None:
                raise reader.error
            return set()
        return reader.partitions

    def _reader_for(self, on_restored: Callable[[set[int]], Awaitable[None]] | None
                    ) -> ChangelogReader:
        if on_restored is not None:
            self._on_restored = on_restored
        if self._reader is None:
            self._reader = ChangelogReader(self.app, on_restored=self._restored,
                                           on_error=self._recovery_failed)
        return self._reader

    async def _restored(self, partitions: set[int]) -> None:
        if self._on_restored is not None:
            await self._on_restored(partitions)

    def _recovery_failed(self, exc: BaseException) -> None:
        self.app.on_fatal(exc)

    async def discard_uncommitted(self) -> None:
        """Exactly-once, after a fencing: forget every table partition held in memory.

        Stores never persisted writes of an uncommitted transaction, so
        reopening a partition and replaying its (committed) changelog gives
        exactly the committed state.
        """
        self._generation += 1
        await self.stop_recovery()
        tailing = self._tailer is not None
        await self.stop_global_tailing()
        for table in self._tables.values():
            for partition in list(table.partitions_held()):
                table.drop_partition(partition)
        self._owned.clear()
        if tailing:
            await self.start_global_tailing()

    @property
    def recovering(self) -> set[int]:
        """Partition numbers whose tables are still being restored (or opened)."""
        restoring = self._reader.partitions if self._reader is not None else set()
        return restoring | self._opening

    async def stop_recovery(self) -> None:
        """Cancel any recovery and release the restore consumer (idempotent)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()
