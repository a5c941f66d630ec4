"""Changelog recovery in the background, one partition at a time ready.

On assignment the :class:`~fluvial.tables.manager.TableManager` compares each
table partition's stored changelog offset with the changelog's end. Current
partitions are processed at once; the others are handed to the
:class:`ChangelogReader`, which reads all of them with one restore consumer
(manual ``assign``, large batches) in a task of its own and reports each
source partition number as soon as every table partition of that number is
restored. The conductor keeps those partitions paused until then.

Under exactly-once the restore consumer reads ``read_committed``: its end is
the last stable offset, and aborted records and transaction markers occupy
offsets it never sees. So a partition is restored when the consumer's
*position* reaches the end, not when a record at ``end - 1`` arrives.

A changelog partition with a transaction still open (a worker killed or
frozen mid-transaction) has its last stable offset *before* that
transaction's first record, and a ``read_committed`` reader sees nothing
after it — not even transactions committed since by the partition's next
owners, whose committed source offsets it would nevertheless start from.
Such a partition's end is unknown until the transaction ends (committed, or
aborted by its producer's successor or by the coordinator after
``transaction.timeout.ms``): its recovery waits for that, then reads to the
end.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable
from itertools import groupby
from typing import TYPE_CHECKING, Any

from ..types import TP, ConsumerT, Message

if TYPE_CHECKING:
    from ..app import App
    from .table import Table

__all__ = ["ChangelogReader", "RecordRun", "RecoveryProgress", "Restoring", "kafka_runs"]

logger = logging.getLogger(__name__)

#: Records asked for per fetch of the restore consumer.
RESTORE_BATCH = 50_000
#: librdkafka settings of the restore consumer over the transport's. A partition whose
#: prefetch queue is full waits ``fetch.queue.backoff.ms`` (1 s by default) before its
#: next fetch; a restore drains its queue in milliseconds, and that wait stalled it
#: (~0.9 s of a 2 s restore of 1M records, in one round of four here).
RESTORE_CONSUMER_CONFIG: dict[str, Any] = {"fetch.queue.backoff.ms": 10}
#: Seconds between two progress lines in the log.
LOG_EVERY_S = 2.0
#: Seconds without any record, and with the consumer's position still short of
#: the end, before the remaining partitions count as read anyway (a last
#: resort: the position normally moves past transaction markers and aborted
#: records, which no consumer sees).
IDLE_GIVE_UP_S = 30.0
#: The end of a partition whose open transaction has not ended yet.
UNSETTLED = 1 << 62
#: Seconds between two log lines about a recovery waiting for open transactions.
WAIT_LOG_EVERY_S = 10.0


class RecordRun:
    """Consecutive changelog records of one partition as parallel lists of keys and
    values: what recovery applies, without a Message object per record.

    ``source`` holds what the run was made of (librdkafka's messages, or fluvial
    Messages): the offsets are read from it only when a run must be cut, and the
    tables that need a Message per record get them from it (:meth:`messages`).
    """

    __slots__ = ("first_offset", "keys", "last_offset", "partition", "source", "topic",
                 "values")

    def __init__(self, topic: str, partition: int, keys: list[bytes | None],
                 values: list[bytes | None], source: list[Any], first_offset: int,
                 last_offset: int) -> None:
        self.topic = topic
        self.partition = partition
        self.keys = keys
        self.values = values
        self.source = source
        self.first_offset = first_offset
        self.last_offset = last_offset

    def __len__(self) -> int:
        return len(self.keys)

    def offsets(self) -> list[int]:
        source = self.source
        if isinstance(source[0], Message):
            return [m.offset for m in source]
        return [raw.offset() for raw in source]

    def within(self, start: int, end: int) -> RecordRun | None:
        """The records at offsets ``start <= offset < end`` (None: none is)."""
        if self.first_offset >= start and self.last_offset < end:
            return self
        offsets = self.offsets()
        lo, hi = bisect_left(offsets, start), bisect_left(offsets, end)
        if lo >= hi:
            return None
        return RecordRun(self.topic, self.partition, self.keys[lo:hi], self.values[lo:hi],
                         self.source[lo:hi], offsets[lo], offsets[hi - 1])

    def messages(self) -> list[Message]:
        """The records as Messages (built from librdkafka's messages on first need)."""
        source = self.source
        if isinstance(source[0], Message):
            return source
        messages: list[Message] = []
        for raw in source:
            ms = raw.timestamp()[1]
            headers = raw.headers()
            messages.append(Message(self.topic, self.partition, raw.offset(), raw.key(),
                                    raw.value(), ms / 1000.0 if ms >= 0 else 0.0,
                                    list(headers) if headers else []))
        return messages


def kafka_runs(raws: list[Any]) -> tuple[list[RecordRun], list[Any]]:
    """The restore consumer's conversion (on its thread): a batch of librdkafka
    messages as runs of one partition each, and the errors among them.

    The message methods mapped over the batch run in C: a fraction of the cost
    of a Message per record, which a restore spends most of its time on otherwise.
    """
    from confluent_kafka import Message as Raw

    errors: list[Any] = []
    if any(map(Raw.error, raws)):
        errors = [e for e in map(Raw.error, raws) if e is not None]
        raws = [m for m in raws if m.error() is None]
    runs: list[RecordRun] = []
    key, value = Raw.key, Raw.value
    by_partition: Any = Raw.partition  # (typed as maybe None: never for a fetched record)
    by_topic: Any = Raw.topic
    for partition, group in groupby(raws, by_partition):
        records = list(group)
        topic = records[0].topic()
        if records[-1].topic() != topic or len(set(map(by_topic, records))) > 1:
            # Runs of one partition number of two changelogs, one after the other.
            for topic, same in groupby(records, by_topic):
                source = list(same)
                runs.append(RecordRun(topic, partition, list(map(key, source)),
                                      list(map(value, source)), source,
                                      source[0].offset(), source[-1].offset()))
            continue
        runs.append(RecordRun(topic, partition, list(map(key, records)),
                              list(map(value, records)), records, records[0].offset(),
                              records[-1].offset()))
    return runs, errors


def message_runs(messages: list[Message]) -> list[RecordRun]:
    """Messages (from a transport that gives Messages) as runs of one partition each."""
    runs: list[RecordRun] = []
    start = 0
    n = len(messages)
    while start < n:
        first = messages[start]
        topic, partition = first.topic, first.partition
        end = start + 1
        while end < n:
            m = messages[end]
            if m.partition != partition or m.topic != topic:
                break
            end += 1
        source = messages[start:end]
        runs.append(RecordRun(topic, partition, [m.key for m in source],
                              [m.value for m in source], source, first.offset,
                              source[-1].offset))
        start = end
    return runs


def isolation(app: App) -> dict[str, Any]:
    """Consumer options of changelog readers: only committed records under exactly-once."""
    return {"isolation_level": "read_committed"} if app.conf.exactly_once else {}


class Restoring:
    """One changelog partition being replayed into one table partition."""

    __slots__ = ("end", "next_offset", "partition", "table", "tp")

    def __init__(self, table: Table, partition: int, next_offset: int,
                 end: int | None) -> None:
        self.table = table
        self.partition = partition
        self.tp = TP(table.changelog_topic_name, partition)
        self.next_offset = next_offset
        #: ``UNSETTLED`` while a transaction is open on the partition (``end=None``).
        self.end = UNSETTLED if end is None else end

    @property
    def settled(self) -> bool:
        return self.end != UNSETTLED

    @property
    def left(self) -> int:
        return max(self.end - self.next_offset, 0) if self.settled else 0


class RecoveryProgress:
    """Records restored of the total, rate and ETA: in the log, and as a bar on a terminal."""

    def __init__(self, *, terminal: bool | None = None, console: Any = None) -> None:
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self._logged = self.started
        self._drawn = 0.0
        if terminal is None:
            terminal = console is not None or sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        if terminal:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("recovering tables"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} records/s"),
                TimeRemainingColumn(),
                console=console or Console(stderr=True),
                auto_refresh=False,
                transient=False,
            )
            self._task = self._bar.add_task("recovery", total=0, rate="-")
            self._bar.start()

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def add(self, records: int) -> None:
        self.total += records

    def advance(self, records: int) -> None:
        self.done += records
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY_S:
            self._logged = now
            left = max(self.total - self.done, 0)
            rate = self.rate
            eta = left / rate if rate > 0 else float("inf")
            logger.info("Recovery: %d of %d changelog records restored, %d left, "
                        "%.0f records/s, ETA %.1fs", self.done, self.total, left, rate, eta)
        if self._bar is not None and now - self._drawn >= 0.1:
            self._drawn = now
            self._draw()

    def _draw(self) -> None:
        self._bar.update(self._task, total=self.total, completed=self.done,
                         rate=f"{self.rate:,.0f}")
        self._bar.refresh()

    def finish(self, partitions: int) -> None:
        elapsed = time.monotonic() - self.started
        logger.info("Recovery: %d changelog records restored into %d table partitions in "
                    "%.2fs (%.0f records/s)", self.done, partitions, elapsed, self.rate)
        self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._draw()
            self._bar.stop()
            self._bar = None


class ChangelogReader:
    """Replays changelog partitions with one restore consumer, in a task it owns.

    ``on_restored(partitions)`` is awaited with the partition numbers whose
    every pending table partition is restored (after the ``on_recover``
    callbacks of tables with nothing left to restore); ``on_error`` hears of a
    failure, which ends the recovery.
    """

    def __init__(self, app: App, *, on_restored: Callable[[set[int]], Awaitable[None]],
                 on_error: Callable[[BaseException], None]) -> None:
        self.app = app
        self._on_restored = on_restored
        self._on_error = on_error
        self._consumer: ConsumerT | None = None
        self._pending: dict[TP, Restoring] = {}
        self._task: asyncio.Task[None] | None = None
        self._progress: RecoveryProgress | None = None
        self._restored_partitions = 0
        self._stopped = False
        self._waiting_logged = 0.0
        #: When a partition's open transaction last ended (its reading starts then).
        self._settled_at = 0.0
        self._idle = asyncio.Event()
        self._idle.set()
        #: The failure that ended the most recent recovery, if any.
        self.error: BaseException | None = None
        #: Changelog records applied by the current (or most recent) recovery.
        self.restored = 0

    @property
    def partitions(self) -> set[int]:
        """Partition numbers with a table partition still being restored."""
        return {r.partition for r in self._pending.values()}

    @property
    def progress(self) -> RecoveryProgress | None:
        """Records restored of the total so far (None before any recovery)."""
        return self._progress

    @property
    def active(self) -> bool:
        return bool(self._pending)

    async def consumer(self) -> ConsumerT:
        """The restore consumer, started on first use and kept until :meth:`stop`."""
        if self._consumer is None:
            consumer = self.app.transport.create_consumer(
                None, client_id=f"{self.app.conf.id}-restore", batch_size=RESTORE_BATCH,
                convert=kafka_runs, **isolation(self.app), **RESTORE_CONSUMER_CONFIG,
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        consumer = await self.consumer()
        return await consumer.end_offsets(tps)

    def add(self, restoring: list[Restoring]) -> None:
        """Start replaying these partitions; never waits (the work is in the task)."""
        if not restoring:
            return
        if self._stopped or self._consumer is None:
            raise RuntimeError("ChangelogReader.add() after stop() or before consumer()")
        self._idle.clear()
        if self._task is None:
            self.error = None
            self.restored = 0
            self._restored_partitions = 0
            self._progress = RecoveryProgress()
        assert self._progress is not None
        for item in restoring:
            self._pending[item.tp] = item
            self._progress.add(item.left)
        logger.info("Recovering %d changelog records for %d table partitions in the background",
                    sum(r.left for r in restoring), len(restoring))
        self._reassign()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="changelog-recovery")

    def cancel(self, partitions: set[int]) -> None:
        """Stop restoring these partition numbers (revoked); what was applied stays applied."""
        gone = [tp for tp, r in self._pending.items() if r.partition in partitions]
        if not gone:
            return
        for tp in gone:
            item = self._pending.pop(tp)
            if self._progress is not None:
                self._progress.total -= item.left
        logger.info("Recovery of %d revoked table partitions cancelled", len(gone))
        self._reassign()

    def _reassign(self) -> None:
        if self._consumer is not None and not self._stopped:
            self._consumer.assign({tp: r.next_offset for tp, r in self._pending.items()})

    async def wait_idle(self) -> None:
        """Wait until nothing is left to restore (done, cancelled, failed or stopped)."""
        await self._idle.wait()

    async def stop(self) -> None:
        """Cancel the recovery task and release the restore consumer (idempotent)."""
        self._stopped = True
        self._pending.clear()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        consumer, self._consumer = self._consumer, None
        self._idle.set()
        if consumer is not None:
            await consumer.stop()

    # -- the task ---------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._replay()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.error("Changelog recovery failed: %r", exc)
            self.error = exc
            self._pending.clear()
            self._on_error(exc)
        finally:
            if self._task is asyncio.current_task():
                self._task = None
                self._idle.set()

    async def _replay(self) -> None:
        consumer = self._consumer
        progress = self._progress
        assert consumer is not None and progress is not None
        pending = self._pending
        idle_since = time.monotonic()
        while pending:
            batch = await consumer.getmany(RESTORE_BATCH, 0.5)
            if batch:
                idle_since = time.monotonic()
                finished = self._apply(batch)
            else:
                finished = await self._reached_end(consumer)
                if finished:
                    idle_since = time.monotonic()
                elif time.monotonic() - max(idle_since, self._settled_at) >= IDLE_GIVE_UP_S:
                    finished = [item for item in pending.values() if item.settled]
                    if finished:
                        logger.warning("Changelog partitions %s end before their high-water "
                                       "mark; recovery stops there",
                                       sorted(item.tp for item in finished))
                    for item in finished:
                        del pending[item.tp]
            if finished:
                await self._finished(finished)
        progress.finish(self._restored_partitions)
        self.app.tables.last_restored = self.restored
        self._progress = None

    async def _settle(self, consumer: ConsumerT) -> None:
        """Give partitions whose open transaction has ended their end offset."""
        unsettled = [tp for tp, item in self._pending.items() if not item.settled]
        if not unsettled:
            return
        # Stable first, then the end: read the other way round, a transaction
        # ending in between would leave an end before its successors' records.
        still_open = await self.app.transport.open_transactions(unsettled)
        settled = [tp for tp in unsettled if tp not in still_open]
        ends = await consumer.end_offsets(settled) if settled else {}
        for tp, end in ends.items():
            item = self._pending.get(tp)
            if item is not None and not item.settled:
                item.end = end
                self._settled_at = time.monotonic()
                if self._progress is not None:
                    self._progress.add(item.left)
        now = time.monotonic()
        if still_open and now - self._waiting_logged >= WAIT_LOG_EVERY_S:
            self._waiting_logged = now
            logger.warning(
                "Recovery waits for transactions still open on %s (a worker stopped "
                "mid-transaction: Kafka aborts it when that worker restarts, or after its "
                "transaction.timeout.ms)", ", ".join(f"{t}[{p}]" for t, p in sorted(still_open)))

    async def _reached_end(self, consumer: ConsumerT) -> list[Restoring]:
        """Partitions whose position is at their end though their last records never came
        (transaction markers, aborted records)."""
        await self._settle(consumer)
        positions = await consumer.position(list(self._pending))
        # The position counts what the consumer fetched, which may still be on its
        # way here: what was fetched before the answer has arrived by now.
        finished: list[Restoring] = []
        while batch := await consumer.getmany(RESTORE_BATCH, 0):
            finished += self._apply(batch)
        pending = self._pending
        for tp, position in positions.items():
            item = pending.get(tp)
            if item is not None and position is not None and position >= item.end:
                item.next_offset = item.end
                del pending[tp]
                finished.append(item)
        return finished

    def _apply(self, batch: list[Any]) -> list[Restoring]:
        """Apply a fetched batch (runs, or Messages); returns the table partitions it
        completed."""
        pending = self._pending
        finished: list[Restoring] = []
        applied = 0
        runs: list[RecordRun] = (batch if not batch or isinstance(batch[0], RecordRun)
                                 else message_runs(batch))
        for run in runs:
            item = pending.get(TP(run.topic, run.partition))
            if item is None:
                continue
            within = run.within(item.next_offset, item.end)
            if within is not None:
                item.table.apply_changelog_run(within.partition, within)
                applied += len(within)
                item.next_offset = within.last_offset + 1
            if item.next_offset >= item.end:
                del pending[item.tp]
                finished.append(item)
        self.restored += applied
        # Kept current, so that whoever sees restored values also sees the count.
        self.app.tables.last_restored = self.restored
        if self._progress is not None:
            self._progress.advance(applied)
        return finished

    async def _finished(self, finished: list[Restoring]) -> None:
        self._restored_partitions += len(finished)
        if self._pending and self._consumer is not None:
            # Pausing (not re-assigning) keeps what was prefetched for the others.
            self._consumer.pause([r.tp for r in finished])
        busy_tables = {r.table for r in self._pending.values()}
        for table in {r.table for r in finished} - busy_tables:
            await table.call_recover_callbacks()
        # Re-read after the callbacks: a rebalance may have come in meanwhile.
        busy = self.partitions
        ready = {r.partition for r in finished} - busy
        if ready:
            await self._on_restored(ready)
