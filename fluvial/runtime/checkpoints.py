"""Checkpoints: table changelogs out, deliveries awaited, processed offsets committed.

At least once a checkpoint runs in its own task beside the fetch loop, by
sequence: it takes the processed offsets, sends the tables' dirty keys, marks
the producer and waits until what was sent up to the mark is delivered, then
commits exactly the offsets it took. Fetching and processing go on meanwhile.

Exactly-once the fetch loop runs it and holds still meanwhile: the actors
finish the events they hold, and the changelogs, the sends and the offsets of
those events commit as one transaction. The protocol is described in
ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..clock import wait_within
from ..exceptions import (
    ConsumerFailed,
    GroupMembershipLost,
    GroupRebalancing,
    ProducerError,
    ProducerFenced,
    TransactionAborted,
    TransportError,
)
from ..types import TP
from .context import WorkerContext
from .transactions import Transactions

__all__ = ["DELIVERY_TIMEOUT_S", "QUIESCE_TIMEOUT_S", "Checkpoints"]

logger = logging.getLogger(__name__)

#: How long a checkpoint waits for the producer to deliver what it must.
DELIVERY_TIMEOUT_S = 60.0

#: Exactly-once: how long a checkpoint waits for the actors to finish the events
#: they hold, so that no transaction holds half of an event's effects.
QUIESCE_TIMEOUT_S = 5.0


class Checkpoints:
    """When and how a worker checkpoints; one checkpoint at a time."""

    def __init__(self, ctx: WorkerContext, *, in_flight: Callable[[], int]) -> None:
        self.ctx = ctx
        #: Event references actors hold and have not acknowledged.
        self._in_flight = in_flight
        #: Events between two checkpoints at most (``broker_commit_every``; set by
        #: the fetch loop as it starts).
        self.every = 10_000
        #: Exactly-once: the worker's transactional producer (``None`` at least once).
        self.transactions: Transactions | None = None
        #: Exactly-once: a transaction is open (not during a commit, after the final
        #: one, after a fencing until the re-join began a new one).
        self.txn_open = False
        #: Exactly-once: abort the open transaction at the stop (an event was left
        #: half done), instead of committing it.
        self.abort_at_stop = False
        #: Exactly-once: the fetch loop is to checkpoint (it holds still meanwhile).
        self.due = False
        self._since = 0
        #: At least once: wakes the checkpoint task before its interval is up.
        self._wanted = asyncio.Event()
        self._lock = asyncio.Lock()

    def use_transactions(self, transactions: Transactions) -> None:
        """Exactly-once: checkpoints commit transactions of ``transactions.producer``."""
        self.transactions = transactions
        self.txn_open = True

    def fetched(self, count: int) -> None:
        """The fetch loop dispatched ``count`` more events: one is due every ``every``."""
        self._since += count
        if self._since >= self.every:
            if self.transactions is None:
                self._wanted.set()
            else:
                self.due = True

    async def run(self, interval: float) -> None:
        """Checkpoint every ``interval`` seconds (at least once: also after ``every``
        events) until cancelled.

        At least once the checkpoint runs here, beside the fetch loop.
        Exactly-once it is the fetch loop's to run while it fetches (see
        :attr:`due`); this task only says when.
        """
        ctx = self.ctx
        wanted = self._wanted
        while True:
            sleeping = asyncio.ensure_future(ctx.clock.sleep(interval))
            waking = asyncio.ensure_future(wanted.wait())
            try:
                await asyncio.wait({sleeping, waking}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeping.cancel()
                waking.cancel()
            wanted.clear()
            if self.transactions is not None and ctx.fetching:
                self.due = True
                continue
            try:
                await self.checkpoint()
            except (ProducerFenced, ConsumerFailed) as exc:
                if not ctx.fetching:
                    raise  # nobody to re-join: the worker stops
                ctx.owe_rejoin(exc)  # the fetch loop re-joins

    async def checkpoint(self, *, final: bool = False) -> None:
        """Changelogs out, deliveries awaited, then processed offsets committed.

        Under exactly-once: changelogs out, offsets sent to the transaction, the
        transaction committed, stores persisted, the next transaction begun (not
        after the ``final`` one). Raises :class:`ProducerFenced` when fenced.
        """
        ctx = self.ctx
        states = ctx.sensors.on_commit_initiated(ctx.consumer)
        async with self._lock:
            self._since = 0
            self.due = False
            if ctx.rejoin_reason is None:
                if self.transactions is not None:
                    await self._commit_transaction(final=final)
                else:
                    await self._checkpoint_at_least_once()
        ctx.sensors.on_commit_completed(ctx.consumer, states)

    async def _checkpoint_at_least_once(self) -> None:
        """Snapshot, deliver, commit — while events go on being fetched and processed.

        1. The processed offsets are taken (events acknowledged so far). Every
           effect of those events was made before their acknowledgement: their
           table writes are dirty keys, their sends are in the producer.
        2. The group is asked whether this worker is still a member (a zombie's
           table values must not reach the changelogs).
        3. The dirty keys go to the changelogs, and the producer is marked: the
           sequence number of the last message it was given.
        4. The checkpoint waits until everything up to that mark is delivered
           (not for an empty producer: what was sent since is not its concern),
           persists the stores, and commits the offsets of step 1.

        Committed offsets therefore never run ahead of delivered messages.
        """
        ctx = self.ctx
        generation = ctx.generation
        offsets = self.committable()
        if not await self._check_membership():
            return  # a rebalance began: its revoke checkpoints (this one is void)
        if generation != ctx.generation or ctx.rejoin_reason is not None:
            return  # re-joined or lost meanwhile: nothing of this is committed
        ctx.tables.flush_changelogs()
        await ctx.topics_declared()
        producer = ctx.producer
        sequence = producer.mark()
        try:
            waiting = ctx.clock.monotonic()
            await wait_within(producer.wait_delivered(sequence), DELIVERY_TIMEOUT_S)
            ctx.sensors.on_producer_flushed(ctx.clock.monotonic() - waiting)
        except TimeoutError:
            raise ProducerError(
                f"The producer could not deliver within {DELIVERY_TIMEOUT_S:.0f} s: is the "
                "broker reachable, and do the topics the app writes exist?"
            ) from None
        if generation != ctx.generation or ctx.rejoin_reason is not None:
            return  # re-joined or lost meanwhile: nothing of this is committed
        ctx.tables.persist()
        consumer = ctx.consumer
        if offsets and consumer is not None:
            try:
                await consumer.commit(offsets)
            except GroupRebalancing as exc:
                # Cut short by a rebalance; its revoke checkpoints (and commits)
                # the partitions it takes away, the next checkpoint the others.
                logger.info("Offsets not known to be committed: %s", exc)
                return
            except GroupMembershipLost as exc:
                # A zombie (stopped past its session timeout) or a rebalance:
                # not fatal, the group hands the partitions out again.
                logger.warning("Offsets not committed, the group moved on: %s. The "
                               "partitions' owners will process these events again.", exc)
                return
            if generation == ctx.generation:
                ctx.offsets.committed.update(offsets)
        ctx.tables.report_committed()

    def committable(self) -> dict[TP, int]:
        """The processed offsets to commit, of assigned partitions only.

        A message of a partition this worker no longer owns (one delivered after
        its revoke) may have been processed here, but committing its offset could
        move the partition's new owner past events it never saw: Kafka checks the
        member and generation of a commit, not who owns the partition.
        """
        tracker = self.ctx.offsets
        offsets = tracker.committable()
        assignment = self.ctx.assignment
        for tp in [tp for tp in offsets if tp not in assignment]:
            logger.warning("Not committing %s[%d] up to offset %d: the partition is not "
                           "assigned to this worker (a message delivered after its revoke)",
                           tp.topic, tp.partition, offsets.pop(tp))
            tracker.processed.pop(tp, None)
        return offsets

    async def _check_membership(self) -> bool:
        """At-least-once, before table changelogs go out: make sure the group still
        counts this worker as a member, by committing again what it committed last.

        A worker frozen past its session timeout (a zombie: SIGSTOP, a long GC
        pause, a VM stall) would otherwise write its stale table values after its
        partitions' new owner wrote newer ones, and the changelog keeps the last.
        Raises :class:`ConsumerFailed`: the worker drops its uncommitted table
        writes and re-joins. False when a rebalance cut the check short: the
        checkpoint is given up (the rebalance's revoke checkpoints).
        """
        ctx = self.ctx
        consumer = ctx.consumer
        if consumer is None or not ctx.offsets.committed or not len(ctx.tables):
            return True
        try:
            await consumer.commit(dict(ctx.offsets.committed))
        except GroupRebalancing:
            return False
        except GroupMembershipLost as exc:
            raise ConsumerFailed(
                f"the group moved on without this worker ({exc}); its table writes since "
                "the last checkpoint are dropped, not sent to the changelogs") from exc
        except TransportError as exc:
            # Not a verdict on membership (the broker unreachable, the consumer
            # stopping): the changelogs go out, the checkpoint's own commit decides.
            logger.warning("Could not check that the group still counts this worker as a "
                           "member before its table changelogs go out (%s)", exc)
        return True

    async def _commit_transaction(self, *, final: bool) -> None:
        assert self.transactions is not None and self.transactions.producer is not None
        ctx = self.ctx
        producer = self.transactions.producer
        if not self.txn_open or ctx.rejoin_reason is not None:
            return  # after the final commit, or fenced (the fetch loop re-joins)
        if self.abort_at_stop:
            self.txn_open = False
            logger.warning("Exactly-once: the worker stops on an event an agent failed; the "
                           "open transaction (that event's effects with the others') is "
                           "aborted, and the next worker processes its events again")
            await producer.abort_transaction()
            await ctx.tables.discard_uncommitted()
            return
        if not final:
            await self.quiesce()
            if ctx.rejoin_reason is not None:
                return  # aborted meanwhile: the fetch loop re-joins
        await ctx.topics_declared()
        offsets = self.committable()
        ctx.tables.flush_changelogs()
        # No await since the offsets were taken: from here on the actors' sends go
        # to the next transaction, like their offsets.
        producer.prepare_commit()
        consumer = ctx.consumer
        if offsets and consumer is not None:
            try:
                metadata = await consumer.group_metadata()
            except GroupMembershipLost as exc:
                raise TransactionAborted(f"not committed: {exc}") from exc
            if ctx.rejoin_reason is not None:
                # Lost meanwhile: the metadata may be a later generation's, which
                # the coordinator would accept for this (stale) transaction.
                fenced, ctx.rejoin_reason = ctx.rejoin_reason, None
                raise fenced
            await producer.send_offsets_to_transaction(offsets, metadata)
        self.txn_open = False
        await producer.commit_transaction()
        # Only now may the stores keep what the changelog holds: an aborted
        # transaction's writes are never persisted.
        ctx.tables.persist()
        ctx.offsets.committed.update(offsets)
        ctx.tables.report_committed()
        if not final:
            await producer.begin_transaction()
            self.txn_open = True

    async def quiesce(self) -> None:
        """Wait until no actor holds an unfinished event (bounded).

        Events still in the buffers have had no effect yet; an event an actor
        took but did not acknowledge may have (a table write, a send): a
        transaction must hold all of an event's effects and its offset, or none.
        The fetch loop is here, so no new events come in meanwhile.
        """
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        deadline = loop.time() + QUIESCE_TIMEOUT_S
        spins = 0
        while self._in_flight() > 0 and not self.abort_at_stop and ctx.rejoin_reason is None:
            if loop.time() > deadline:
                logger.warning(
                    "Exactly-once checkpoint: actors still hold unfinished events after %.0f s "
                    "(an agent waiting on ask(), take(within=), or a slow call?); committing "
                    "what is finished", QUIESCE_TIMEOUT_S)
                return
            spins += 1
            await asyncio.sleep(0 if spins < 20 else 0.001)
