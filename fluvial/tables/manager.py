"""The tables of an app: changelog flushing at checkpoints, recovery on assignment."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..types import TP

if TYPE_CHECKING:
    from ..app import App
    from .table import Table

__all__ = ["TableManager"]

logger = logging.getLogger(__name__)

RESTORE_BATCH = 50_000


class TableManager:
    """``app.tables``: every table by name."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._tables: dict[str, Table] = {}
        #: Changelog records applied by the most recent recovery.
        self.last_restored = 0

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

    def persist(self) -> None:
        """After a successful producer flush: persist every store with its changelog offset."""
        for table in self._tables.values():
            table.persist()

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        partitions = {tp.partition for tp in revoked}
        for table in self._tables.values():
            for partition in partitions:
                table.drop_partition(partition)

    async def on_partitions_assigned(self, assigned: set[TP]) -> None:
        """Restore the assigned partitions of every table from their changelogs."""
        if not self._tables:
            return
        partitions = {tp.partition for tp in assigned}
        wanted: dict[TP, Table] = {}
        for table in self._tables.values():
            for partition in sorted(partitions):
                if partition < table.partitions:
                    wanted[TP(table.changelog_topic_name, partition)] = table
        if wanted:
            await self.restore(wanted)

    async def restore(self, wanted: dict[TP, Table]) -> None:
        transport = self.app.transport
        consumer = transport.create_consumer(None, client_id=f"{self.app.conf.id}-restore")
        await consumer.start()
        started = time.monotonic()
        try:
            ends = await consumer.end_offsets(wanted)
            starts: dict[TP, int] = {}
            for tp, table in wanted.items():
                done = table.open_partition(tp.partition).changelog_offset
                starts[tp] = 0 if done is None else done + 1
            todo = {tp: ends[tp] for tp in wanted if ends.get(tp, 0) > starts[tp]}
            total = sum(ends[tp] - starts[tp] for tp in todo)
            if todo:
                consumer.assign({tp: starts[tp] for tp in todo})
                logger.info("Recovering %d changelog records for %d partitions",
                            total, len(todo))
                restored = 0
                idle = 0
                while todo:
                    batch = await consumer.getmany(RESTORE_BATCH, 1.0)
                    idle = 0 if batch else idle + 1
                    if idle >= 5:
                        # The tail is made of records we never see (compacted
                        # away, transaction markers): what could be read was.
                        logger.warning("Changelog partitions %s end before their high-water "
                                       "mark; recovery stops there", sorted(todo))
                        break
                    by_tp: dict[TP, list] = {}  # type: ignore[type-arg]
                    for message in batch:
                        tp = TP(message.topic, message.partition)
                        if tp in todo and message.offset < todo[tp]:
                            by_tp.setdefault(tp, []).append(message)
                    for tp, messages in by_tp.items():
                        wanted[tp].apply_changelog(tp.partition, messages)
                        restored += len(messages)
                        if messages[-1].offset + 1 >= todo[tp]:
                            del todo[tp]
                elapsed = time.monotonic() - started
                self.last_restored = restored
                logger.info("Recovered %d records in %.2fs", restored, elapsed)
            else:
                self.last_restored = 0
        finally:
            await consumer.stop()
        for table in set(wanted.values()):
            await table.call_recover_callbacks()
