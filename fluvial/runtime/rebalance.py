"""Rebalancing: the steps of a revoke, a loss and an assignment, and re-joining.

A revoke drops the revoked partitions' queued events, lets the actors finish
the ones they hold, checkpoints synchronously, then gives the partitions up.
A loss (the group went on without this worker) commits nothing and owes a
re-join. An assignment opens the tables' partitions and keeps the partitions
whose tables are being restored paused. A re-join (fenced, consumer failed,
partitions lost) drops what was not committed and joins again with a new
consumer. See ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ..exceptions import ConsumerFailed, FluvialError, ProducerFenced, TransactionAborted
from ..types import TP, ConsumerT
from .checkpoints import Checkpoints
from .context import WorkerContext
from .offsets import OffsetTracker
from .pacing import RejoinPacing

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["IN_FLIGHT_TIMEOUT_S", "Intake", "Rebalance", "RebalanceHooks", "fmt_tps",
           "leader_topic"]

logger = logging.getLogger(__name__)

#: How long a revoke waits for actors to finish the events of revoked partitions they hold.
IN_FLIGHT_TIMEOUT_S = 10.0


class Intake(Protocol):
    """The fetch side of a worker as a rebalance sees it (the conductor)."""

    #: References taken back from the buffers that will never be acknowledged.
    discarded_refs: int

    def discard(self, tps: set[TP]) -> tuple[dict[int, int], int, set[TP]]:
        """Drop the queued events of ``tps``: (copies dropped per ``id(message)``,
        how many in all, the partitions of ``tps`` whose actors must be waited for)."""

    def is_paused(self, topic: str) -> bool:
        """Whether back-pressure paused ``topic``."""

    def reset(self) -> None:
        """Forget every queued event and every back-pressure pause (a re-join)."""

    def subscribe_consumer(self, consumer: ConsumerT) -> None:
        """Subscribe ``consumer`` to the worker's topics, with this rebalance's callbacks."""


class RebalanceHooks(NamedTuple):
    """What a rebalance tells the rest of the worker, and where it gets a consumer."""

    #: The app's settings (read when needed: they are final only once the worker runs).
    settings: Callable[[], Settings]
    on_leadership: Callable[[bool], None]
    membership_changed: Callable[[], None]
    revoked: Callable[[set[TP]], Awaitable[Any]]
    assigned: Callable[[set[TP]], Awaitable[Any]]
    completed: Callable[[], Awaitable[Any]]
    new_consumer: Callable[[], Awaitable[ConsumerT]]


class Rebalance:
    """The rebalance steps of one worker."""

    def __init__(self, ctx: WorkerContext, checkpoints: Checkpoints, intake: Intake,
                 hooks: RebalanceHooks) -> None:
        self.ctx = ctx
        self.checkpoints = checkpoints
        self.intake = intake
        self.hooks = hooks
        #: Whether this worker holds partition 0 of the leader topic (``app.is_leader()``).
        self.leader = False
        #: Whether the ``on_leader`` tasks were told this worker leads.
        self._leading = False
        self.rejoining = False
        self._pacing = RejoinPacing()

    @property
    def leader_tp(self) -> TP:
        """The leader topic's partition: whoever is assigned it leads."""
        return TP(leader_topic(self.hooks.settings().id), 0)

    # -- revoke, loss ------------------------------------------------------------

    async def revoked(self, revoked: set[TP]) -> None:
        ctx = self.ctx
        ctx.sensors.rebalance_started()
        revoked = self._leadership(revoked, held=False)
        logger.info("Partitions revoked: %s", fmt_tps(revoked))
        await self.hooks.revoked(revoked)
        # Events still queued for revoked partitions are dropped (the new owner
        # reads them again); events an actor holds are finished first, so that
        # the checkpoint below commits them and nobody processes them twice.
        dropped, discarded, watched = self.intake.discard(revoked)
        if not self.rejoining:
            await self.finish_in_flight(watched, dropped)
            self.intake.discarded_refs = discarded
            try:
                await self.checkpoints.checkpoint()
            except (ProducerFenced, ConsumerFailed) as exc:
                # Handled by the fetch loop (this may run on the consumer's behalf).
                ctx.owe_rejoin(exc)
            except FluvialError as exc:
                logger.error("Checkpoint on revoke failed: %s", exc)
                ctx.fail(exc)
            finally:
                self.intake.discarded_refs = 0
        await self.give_up(revoked, clean=ctx.rejoin_reason is None)

    async def lost(self, lost: set[TP]) -> None:
        """The group dropped this worker (frozen past its session timeout: a zombie);
        other workers may own ``lost`` already and be processing them.

        Nothing of them may be committed, flushed or kept: no checkpoint, their
        queued events and table partitions are dropped, and the worker re-joins
        from the committed offsets as after a fencing (exactly-once: the open
        transaction is aborted; at-least-once: table writes not checkpointed are
        discarded instead of reaching the changelogs after the new owner's).
        """
        leader_tp = self.leader_tp
        if leader_tp in lost:
            self.set_leader(False)
            lost = lost - {leader_tp}
        logger.warning(
            "Partitions lost: %s — the group went on without this worker (it did not "
            "heartbeat within broker_session_timeout=%.0f s: frozen, swapped out, or cut "
            "off); what it did not commit is discarded and it re-joins",
            fmt_tps(lost), self.hooks.settings().broker_session_timeout)
        reason = f"the partitions were lost: {fmt_tps(lost)}"
        self.ctx.owe_rejoin(TransactionAborted(reason)
                            if self.checkpoints.transactions is not None
                            else ConsumerFailed(reason))
        self.intake.discard(lost)
        await self.give_up(lost, clean=False)

    async def give_up(self, tps: set[TP], *, clean: bool) -> None:
        """Forget ``tps``: their offsets, assignment, recovery and table partitions
        (``clean=False``: their tables hold writes that were not checkpointed)."""
        ctx = self.ctx
        ctx.offsets.forget(tps)
        ctx.assignment -= tps
        ctx.recovering -= {tp.partition for tp in tps}
        await ctx.tables.on_partitions_revoked(tps, clean=clean)

    async def finish_in_flight(self, tps: set[TP], dropped: dict[int, int]) -> None:
        """Wait (bounded) until no actor holds an event of ``tps``."""
        if not tps:
            return
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        deadline = loop.time() + IN_FLIGHT_TIMEOUT_S
        while ((left := ctx.offsets.in_flight(tps, dropped)) and ctx.error is None
               and ctx.rejoin_reason is None):
            if loop.time() >= deadline:
                logger.warning(
                    "%d events of revoked partitions were still being processed after "
                    "%.0f s: abandoned (their offsets are not committed; the partitions' "
                    "new owner processes them again)", left, IN_FLIGHT_TIMEOUT_S)
                return
            await asyncio.sleep(0.005)

    # -- leadership --------------------------------------------------------------

    def _leadership(self, tps: set[TP], *, held: bool) -> set[TP]:
        """Take the leader topic's partition out of ``tps`` and note the leadership.

        A revoke only suspends it (``is_leader()`` is false meanwhile): with
        Kafka's eager rebalancing every member gives everything up before the
        new assignment, so the ``on_leader`` tasks stop only once the next
        assignment goes to another worker.
        """
        leader_tp = self.leader_tp
        if held:
            self.set_leader(leader_tp in tps)
        elif leader_tp in tps:
            self.leader = False
        return tps - {leader_tp}

    def set_leader(self, leader: bool) -> None:
        """Become (or stop being) the leader: ``on_leader`` tasks start (or stop)."""
        self.leader = leader
        if leader == self._leading:
            return
        self._leading = leader
        logger.info("This worker %s the leader of group %r",
                    "is now" if leader else "is no longer", self.hooks.settings().id)
        self.hooks.on_leadership(leader)

    # -- assignment --------------------------------------------------------------

    async def assigned(self, assigned: set[TP]) -> None:
        assigned = self._leadership(assigned, held=True)
        self.hooks.membership_changed()  # a new generation: who owns what, where
        logger.info("Partitions assigned: %s", fmt_tps(assigned))
        sensors = self.ctx.sensors
        sensors.rebalance_returned()
        try:
            await self._assign(assigned)
        except BaseException as exc:
            sensors.rebalance_ended(exc)
            raise
        sensors.rebalance_ended()
        await self.hooks.assigned(assigned)
        await self.hooks.completed()

    async def _assign(self, assigned: set[TP]) -> None:
        ctx = self.ctx
        generation = ctx.generation
        ctx.assignment |= assigned
        # Tables behind their changelog are restored in the background; their
        # partitions stay paused until then, the others are processed at once.
        # No await between this and the pause below: the restore task cannot
        # report a partition before it is paused.
        recovering = await ctx.tables.on_partitions_assigned(
            assigned, on_restored=self.restored)
        if generation != ctx.generation:
            return  # re-joined meanwhile (exactly-once fencing): this assignment is void
        ctx.recovering |= recovering
        is_paused = self.intake.is_paused
        paused = [tp for tp in ctx.assignment
                  if is_paused(tp.topic) or tp.partition in ctx.recovering]
        if paused and ctx.consumer is not None:
            ctx.consumer.pause(paused)

    async def restored(self, partitions: set[int]) -> None:
        """The tables of ``partitions`` are restored: process their events."""
        ctx = self.ctx
        ctx.recovering -= partitions
        is_paused = self.intake.is_paused
        resumed = [tp for tp in ctx.assignment
                   if tp.partition in partitions and not is_paused(tp.topic)]
        logger.info("Tables restored; partitions resumed: %s", fmt_tps(set(resumed)))
        if resumed and ctx.consumer is not None:
            ctx.consumer.resume(resumed)

    # -- re-joining --------------------------------------------------------------

    @property
    def rejoins(self) -> int:
        """Times this worker re-joined its group after a fencing or a failed consumer."""
        transactions = self.checkpoints.transactions
        return transactions.fenced if transactions is not None else self._pacing.count

    async def rejoin(self, reason: ProducerFenced | ConsumerFailed) -> None:
        """Fenced, or the consumer failed: drop what was not committed and re-join
        the group from its offsets.

        The open transaction (exactly-once) is aborted, events in flight and
        every table partition are dropped (stores never persisted the
        uncommitted writes), the producer is renewed (exactly-once) and a new
        group consumer joins; the tables are restored from their changelogs on
        assignment. A re-join soon after the previous one waits first, doubling
        each time.
        """
        ctx = self.ctx
        checkpoints = self.checkpoints
        transactions = checkpoints.transactions
        if transactions is not None:
            delay = transactions.backoff()
            count = transactions.fenced
        else:
            delay = self._pacing.next_delay()
            count = self._pacing.count
        if isinstance(reason, TransactionAborted):
            what = "Exactly-once: the transaction could not commit"
        elif isinstance(reason, ProducerFenced):
            what = "Exactly-once: the worker was fenced"
        else:
            what = "The group consumer failed"
        logger.warning(
            "%s (%s). Its uncommitted work is discarded and it re-joins group %r from the "
            "committed offsets%s.", what, reason, self.hooks.settings().id,
            f" in {delay:.0f} s ({count} times lately)" if delay else "")
        self.rejoining = True
        checkpoints.txn_open = False
        # The old consumer's rebalance callbacks (one may be running) change nothing
        # now, nor does a checkpoint begun before.
        ctx.generation += 1
        try:
            old = ctx.consumer
            ctx.consumer = None
            if old is not None:
                await old.stop()
            self.intake.reset()
            ctx.offsets = OffsetTracker()
            self.set_leader(False)
            ctx.assignment.clear()
            ctx.recovering.clear()
            await ctx.tables.discard_uncommitted()
            if delay:
                await asyncio.sleep(delay)
            if transactions is not None:
                await transactions.renew(keep=isinstance(reason, TransactionAborted))
                checkpoints.txn_open = True
            consumer = await self.hooks.new_consumer()
            ctx.consumer = consumer
            self.intake.subscribe_consumer(consumer)
        finally:
            self.rejoining = False


def leader_topic(group: str) -> str:
    """The one-partition topic whose partition 0 makes a worker of ``group`` the
    leader (Faust's name)."""
    return f"{group}-__assignor-__leader"


def fmt_tps(tps: set[TP]) -> str:
    """``topic[0, 1], other[2]`` (for logs)."""
    by_topic: dict[str, list[int]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return ", ".join(f"{t}{sorted(p)}" for t, p in sorted(by_topic.items())) or "none"
