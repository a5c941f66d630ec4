"""The conductor: fetch batches, decode them once per topic, hand them to streams,
apply back-pressure, and checkpoint (changelogs, producer flush, offset commit —
under exactly-once, one transaction with the offsets; see :mod:`.transactions`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..buffers import EventBuffer
from ..clock import wait_event, wait_within
from ..events import Event
from ..exceptions import (
    ConsumerFailed,
    DecoderUnavailable,
    FluvialError,
    GroupMembershipLost,
    ProducerError,
    ProducerFenced,
    SerializationError,
    TransactionAborted,
    TransportError,
    WorkerStopped,
)
from ..types import TP, ConsumerT, Message
from .deadletter import dead_letter, position, shorten
from .offsets import OffsetTracker
from .pacing import RejoinPacing
from .transactions import Transactions

if TYPE_CHECKING:
    from ..app import App
    from ..channels import Topic

__all__ = ["Conductor", "leader_topic_name"]

logger = logging.getLogger(__name__)

#: How long a checkpoint waits for the producer to deliver everything it sent.
FLUSH_TIMEOUT_S = 60.0

#: How long a revoke waits for actors to finish the events of revoked partitions they hold.
IN_FLIGHT_TIMEOUT_S = 10.0

#: How long a full buffer may hold up fetching before its partitions are paused.
PAUSE_AFTER_S = 0.5

#: Exactly-once: how long a checkpoint waits for the actors to finish the events
#: they hold, so that no transaction holds half of an event's effects.
QUIESCE_TIMEOUT_S = 5.0


class Subscription:
    """One :class:`Topic` object reading a topic, with its decoders and buffers."""

    __slots__ = ("buffers", "convert_key", "convert_value", "decode_key", "decode_value",
                 "policy", "topic")

    def __init__(self, topic: Topic[Any], app: App) -> None:
        conf = app.conf
        self.topic = topic
        self.buffers: list[EventBuffer] = []
        self.decode_key: Callable[[bytes | None], Any] = topic.schema.key_decoder(
            default_serializer=conf.key_serializer, channel=topic
        )
        self.decode_value: Callable[[bytes | None], Any] = topic.schema.value_decoder(
            default_serializer=conf.value_serializer, channel=topic
        )
        self.convert_key, self.convert_value = topic.schema.fast_converters(
            conf.key_serializer, conf.value_serializer, channel=topic
        )
        self.policy = topic.on_decode_error or conf.decode_error_policy


class Conductor:
    """Owns the group consumer of a worker and everything between it and the streams."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._subs: dict[str, list[Subscription]] = {}
        #: Topics subscribed by regular expression (``app.topic(pattern=...)``), and
        #: the subscriptions each topic seen so far matched.
        self._patterns: list[tuple[re.Pattern[str], Subscription]] = []
        self._matched: dict[str, list[Subscription]] = {}
        self._by_topic_object: dict[int, Subscription] = {}
        self.tracker = OffsetTracker()
        self.consumer: ConsumerT | None = None
        self._paused: dict[str, set[EventBuffer]] = {}
        #: Buffers over their size that the fetch loop waits for (not yet paused).
        self._full: set[EventBuffer] = set()
        self._drained = asyncio.Event()
        self._assignment: set[TP] = set()
        #: Partition numbers whose tables are being restored: paused until they are.
        self._recovering: set[int] = set()
        self._since_checkpoint = 0
        #: Exactly-once: the fetch loop is to checkpoint (it holds still meanwhile).
        self._checkpoint_due = False
        #: At-least-once: wakes the checkpoint task before its interval is up.
        self._checkpoint_wanted = asyncio.Event()
        self._checkpoint_lock = asyncio.Lock()
        self._resubscribe_needed = False
        self._running = False
        #: Exactly-once: the worker's transactional producer (``None`` at least once).
        self.transactions: Transactions | None = None
        #: A fencing seen where it cannot be handled (on revoke), for the fetch loop.
        self._fenced: ProducerFenced | ConsumerFailed | None = None
        self._rejoining = False
        self._pacing = RejoinPacing()
        #: Bumped by each re-join: rebalance callbacks of an older consumer are ignored.
        self._membership = 0
        #: Exactly-once: a transaction is open (not during a commit, after the final
        #: one, after a fencing until the re-join began a new one).
        self._txn_open = False
        #: References of revoked partitions' events dropped from the buffers (never acked).
        self._discarded_refs = 0
        self.error: BaseException | None = None
        #: Whether this worker holds partition 0 of the leader topic (``app.is_leader()``).
        self.leader = False
        #: Whether the ``on_leader`` tasks were told this worker leads.
        self._leading = False
        #: The message a ``stop`` policy stopped the worker on.
        self._stopped_on: Message | None = None
        #: Exactly-once: abort the open transaction at the stop (see :meth:`fail`).
        self._abort_at_stop = False
        #: Counters for metrics and the banner.
        self.events_received = 0
        self.decode_errors = 0
        #: Messages sent to the dead-letter topic (undecodable, or failed processing).
        self.dead_lettered = 0

    def use_transactions(self, transactions: Transactions) -> None:
        """Exactly-once: checkpoints commit transactions of ``transactions.producer``."""
        self.transactions = transactions
        self._txn_open = True

    # -- subscriptions -------------------------------------------------------

    def subscribe(self, topic: Topic[Any], buffer: EventBuffer) -> None:
        sub = self._by_topic_object.get(id(topic))
        if sub is None:
            sub = self._by_topic_object[id(topic)] = Subscription(topic, self.app)
            for name in topic.topics:
                self._subs.setdefault(name, []).append(sub)
            if topic.pattern is not None:
                self._patterns.append((re.compile(topic.pattern), sub))
                self._matched.clear()
        sub.buffers.append(buffer)
        buffer.on_drain = self._on_drain
        if self._running:
            self._resubscribe_needed = True

    @property
    def topic_names(self) -> set[str]:
        """What the group consumer subscribes: topic names and ``^`` patterns."""
        return set(self._subs) | {sub.topic.pattern for _, sub in self._patterns
                                  if sub.topic.pattern is not None}

    def _subscribers(self, topic: str) -> list[Subscription] | None:
        """The subscriptions reading ``topic``: by name, else by a matching pattern."""
        subs = self._subs.get(topic)
        if subs is not None or not self._patterns:
            return subs
        matched = self._matched.get(topic)
        if matched is None:
            matched = self._matched[topic] = [sub for regex, sub in self._patterns
                                              if regex.search(topic)]
            for sub in matched:
                for buffer in sub.buffers:  # so that back-pressure pauses it too
                    buffer.topics = buffer.topics | {topic}
        return matched or None

    @property
    def topics(self) -> list[Topic[Any]]:
        return [sub.topic for sub in self._by_topic_object.values()]

    def assignment(self) -> set[TP]:
        return set(self._assignment)

    def recovering(self) -> set[int]:
        """Partition numbers held back until their tables are restored."""
        return set(self._recovering)

    def buffers(self) -> list[EventBuffer]:
        """Every subscriber's buffer."""
        return [b for sub in self._by_topic_object.values() for b in sub.buffers]

    def paused_topics(self) -> set[str]:
        """Topics whose partitions are paused because a reader's buffer stayed full."""
        return set(self._paused)

    # -- lifetime ------------------------------------------------------------

    async def run(self, consumer: ConsumerT) -> None:
        """Fetch and dispatch until cancelled; the caller owns the consumer."""
        self.consumer = consumer
        self._running = True
        self._subscribe(consumer)
        conf = self.app.conf
        max_records = conf.broker_max_poll_records
        commit_every = conf.broker_commit_every
        try:
            while True:
                if self._fenced is not None:
                    fenced, self._fenced = self._fenced, None
                    await self.rejoin(fenced)
                if self._resubscribe_needed:
                    await self._resubscribe()
                if self._full:
                    await self._wait_for_room()
                if not self.app.flow_control.is_active():
                    await self._wait_for_flow()
                    continue
                try:
                    messages = await self.consumer.getmany(max_records, 0.2)
                except ConsumerFailed as exc:
                    await self.rejoin(exc)
                    continue
                if messages:
                    self.dispatch(messages)
                    self._since_checkpoint += len(messages)
                    if self._since_checkpoint >= commit_every:
                        if self.transactions is None:
                            self._checkpoint_wanted.set()
                        else:
                            self._checkpoint_due = True
                if self._checkpoint_due:
                    # Exactly-once: in the fetch loop, not beside it, since a
                    # transaction holds whole events: nothing new comes in while
                    # the actors finish theirs and the transaction commits.
                    # At-least-once checkpoints run beside it (run_checkpoints).
                    self._checkpoint_due = False
                    try:
                        await self.checkpoint()
                    except (ProducerFenced, ConsumerFailed) as exc:
                        await self.rejoin(exc)
                # Let the actors run before fetching more.
                await asyncio.sleep(0)
        finally:
            self._running = False
            await self.app.tables.stop_recovery()

    async def _wait_for_flow(self) -> None:
        """``app.flow_control`` is suspended: fetch nothing, keep checkpointing."""
        try:
            await wait_within(self.app.flow_control.acquire(), 0.2)
        except TimeoutError:
            pass
        if self._checkpoint_due:
            self._checkpoint_due = False
            try:
                await self.checkpoint()
            except (ProducerFenced, ConsumerFailed) as exc:
                await self.rejoin(exc)

    async def _resubscribe(self) -> None:
        self._resubscribe_needed = False
        await self.app.declare_topics([sub.topic for sub in self._by_topic_object.values()])
        assert self.consumer is not None
        self._subscribe(self.consumer)

    def _subscribe(self, consumer: ConsumerT) -> None:
        membership = self._membership

        async def on_assign(assigned: set[TP]) -> None:
            if membership == self._membership:
                await self.on_partitions_assigned(assigned)

        async def on_revoke(revoked: set[TP]) -> None:
            if membership == self._membership:
                await self.on_partitions_revoked(revoked)

        async def on_lost(lost: set[TP]) -> None:
            if membership == self._membership:
                await self.on_partitions_lost(lost)

        # The leader topic is always subscribed: the group's range assignor gives
        # its one partition to exactly one member, the leader (as Faust elects it).
        names = sorted({*self.topic_names, leader_topic_name(self.app)})
        consumer.subscribe(names, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    async def run_checkpoints(self) -> None:
        """Checkpoint every ``broker_commit_interval`` seconds (at least once: also
        after ``broker_commit_every`` events) until cancelled.

        At least once the checkpoint runs here, beside the fetch loop: events
        are fetched and processed while the changelogs are delivered and the
        offsets committed. Exactly-once it is the fetch loop's to run (it
        holds still for the transaction's commit); this task only says when.
        """
        clock = self.app.clock
        interval = self.app.conf.commit_interval_s
        wanted = self._checkpoint_wanted
        while True:
            sleeping = asyncio.ensure_future(clock.sleep(interval))
            waking = asyncio.ensure_future(wanted.wait())
            try:
                await asyncio.wait({sleeping, waking}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeping.cancel()
                waking.cancel()
            wanted.clear()
            if self.transactions is not None and self._running:
                self._checkpoint_due = True
                continue
            try:
                await self.checkpoint()
            except (ProducerFenced, ConsumerFailed) as exc:
                # The fetch loop re-joins (a checkpoint between runs raises).
                if not self._running:
                    raise
                if self._fenced is None:
                    self._fenced = exc

    # -- dispatch --------------------------------------------------------------

    def dispatch(self, messages: list[Message]) -> None:
        """Decode a batch per topic and hand the events to every subscriber."""
        if self.error is not None:
            return  # stopping: nothing more is processed (nor tracked, nor committed)
        by_topic: dict[str, list[Message]] = {}
        for message in messages:
            batch = by_topic.get(message.topic)
            if batch is None:
                by_topic[message.topic] = [message]
            else:
                batch.append(message)
        self.events_received += len(messages)
        tracker = self.tracker
        sensors = self.app.sensors
        sensed = sensors.messages  # once per batch: no sensor, no cost
        for topic, batch in by_topic.items():
            subs = self._subscribers(topic)
            if not subs:
                continue  # not ours any more (resubscribed); not tracked, never committed
            receivers = sum(len(sub.buffers) for sub in subs)
            for message in batch:
                message.hold(receivers)
            tracker.track(topic, batch)
            if sensed:
                sensors.on_messages_in(topic, batch)
            decoded = [(sub, self._decode(sub, batch)) for sub in subs]
            if self.error is not None:
                # decode_error_policy=stop: no subscriber sees the bad message or
                # any after it (never acknowledged, so never committed).
                decoded = self._before_stop(batch, decoded)
            for sub, events in decoded:
                for buffer in sub.buffers:
                    buffer.put_many(events)
                    if buffer.full and not buffer.draining:
                        buffer.draining = True
                        self._full.add(buffer)
            if self.error is not None:
                return

    def _before_stop(self, batch: list[Message], decoded: list[tuple[Subscription, list[Event]]]
                     ) -> list[tuple[Subscription, list[Event]]]:
        """The events of ``batch`` before the message a ``stop`` policy stopped on."""
        stopped = self._stopped_on
        cut = next((i for i, m in enumerate(batch) if m is stopped), len(batch))
        keep = {id(m) for m in batch[:cut]}
        return [(sub, [e for e in events if id(e.message) in keep]) for sub, events in decoded]

    def _decode(self, sub: Subscription, batch: list[Message]) -> list[Event]:
        app = self.app
        ck = sub.convert_key
        cv = sub.convert_value
        try:
            if ck is None:
                return [Event(app, m.key, cv(m.value), None, m) for m in batch]
            return [Event(app, ck(m.key), cv(m.value), None, m) for m in batch]
        except Exception:
            pass
        # Something in the batch did not decode: one message at a time, each
        # failure handled by the policy. Whatever a decoder raises (a codec
        # letting out a MemoryError or RecursionError included) is the
        # message's fault, not the worker's.
        dk = sub.decode_key
        dv = sub.decode_value
        events = []
        for m in batch:
            try:
                events.append(Event(app, dk(m.key), dv(m.value), None, m))
            except DecoderUnavailable as exc:
                logger.error("Cannot decode message %s: %s. Stopping without committing it.",
                             position(m), exc)
                m.never_commit()
                self._stopped_on = m
                self.fail(exc)
                break
            except Exception as exc:
                if not self._on_decode_error(sub, m, exc):
                    break
        return events

    def _on_decode_error(self, sub: Subscription, message: Message, exc: Exception) -> bool:
        """Apply the decode error policy; False when the worker stops on ``message``."""
        self.decode_errors += 1
        where = position(message)
        error = str(exc) if isinstance(exc, SerializationError) else f"{type(exc).__name__}: {exc}"
        shown = shorten(error)
        policy = sub.policy
        if policy == "dead_letter":
            failed = dead_letter(self.app, message, error)
            if failed is None:
                message.release(len(sub.buffers))
                logger.error("Cannot decode message %s: %s. Sent to dead-letter topic %r.",
                             where, shown, self.app.conf.dead_letter_topic_name)
                return True
            logger.error("Cannot decode message %s: %s. It cannot be sent to the dead-letter "
                         "topic %r either (%s): stopping without committing it.",
                         where, shown, self.app.conf.dead_letter_topic_name, shorten(str(failed)))
            self._stop_on(message, f"Undecodable message at {where} not dead-lettered: {failed}")
            return False
        if policy == "stop":
            logger.error("Cannot decode message %s: %s. Stopping (decode_error_policy=stop).",
                         where, shown)
            self._stop_on(message, f"Undecodable message at {where}: {shown}")
            return False
        message.release(len(sub.buffers))
        logger.error("Cannot decode message %s: %s. Skipped (decode_error_policy=skip).",
                     where, shown)
        return True

    def _stop_on(self, message: Message, reason: str) -> None:
        # Never acknowledged: its offset is not committed, a restart sees it again.
        message.never_commit()
        if self.error is None:
            self._stopped_on = message
        self.fail(WorkerStopped(reason))

    def abort_transaction(self, reason: str) -> None:
        """Exactly-once: drop the open transaction and what it holds, and re-join from
        the committed offsets (as after a fencing), so that its events are processed
        again from a clean state (an agent retries an event it raised on)."""
        if self._fenced is None:
            self._fenced = TransactionAborted(reason)
        # What is queued would only add to the doomed transaction: read again after.
        for buffer in self.buffers():
            buffer.items.clear()

    def fail(self, error: BaseException, *, abort: bool = False) -> None:
        """Stop the worker loudly with ``error``.

        ``abort``: an event was left half done (an agent raised on it and it
        is not to be committed); exactly-once, the open transaction holds its
        effects, so it is aborted rather than committed at the stop.
        """
        if abort:
            self._abort_at_stop = True
        if self.error is None:
            self.error = error
            self.app._on_fatal(error)

    # -- back-pressure -----------------------------------------------------------
    #
    # A full buffer first makes the fetch loop wait (librdkafka keeps its
    # prefetched messages: pausing would throw them away). Only a buffer that
    # stays full for PAUSE_AFTER_S gets its partitions paused, so that one
    # slow agent does not hold up the others.

    async def _wait_for_room(self) -> None:
        self._drained.clear()
        if not await wait_event(self._drained, PAUSE_AFTER_S):
            stuck, self._full = self._full, set()
            for buffer in stuck:
                self._pause_for(buffer)

    def _pause_for(self, buffer: EventBuffer) -> None:
        buffer.draining = True
        to_pause: list[TP] = []
        for topic in buffer.topics:
            holders = self._paused.setdefault(topic, set())
            if not holders:
                to_pause.extend(tp for tp in self._assignment if tp.topic == topic)
            holders.add(buffer)
        if to_pause and self.consumer is not None:
            self.consumer.pause(to_pause)
            for tp in to_pause:
                self.app.sensors.on_topic_buffer_full(tp)

    def _on_drain(self, buffer: EventBuffer) -> None:
        self._drained.set()
        if buffer in self._full:
            self._full.discard(buffer)
            return
        to_resume: list[TP] = []
        for topic in buffer.topics:
            holders = self._paused.get(topic)
            if holders is None:
                continue
            holders.discard(buffer)
            if not holders:
                del self._paused[topic]
                to_resume.extend(tp for tp in self._assignment
                                 if tp.topic == topic and tp.partition not in self._recovering)
        if to_resume and self.consumer is not None:
            self.consumer.resume(to_resume)

    # -- checkpoints -------------------------------------------------------------

    async def checkpoint(self, *, final: bool = False) -> None:
        """Changelogs out, producer flushed, then processed offsets committed.

        Under exactly-once: changelogs out, offsets sent to the transaction, the
        transaction committed, stores persisted, the next transaction begun (not
        after the ``final`` one). Raises :class:`ProducerFenced` when fenced.
        """
        sensors = self.app.sensors
        states = sensors.on_commit_initiated(self.consumer)
        await self._checkpoint(final=final)
        sensors.on_commit_completed(self.consumer, states)

    async def _checkpoint(self, *, final: bool) -> None:
        async with self._checkpoint_lock:
            self._since_checkpoint = 0
            self._checkpoint_due = False
            if self._fenced is not None:
                return  # fenced or partitions lost: the fetch loop re-joins first
            if self.transactions is not None:
                await self._commit_transaction(final=final)
                return
            await self._checkpoint_at_least_once()

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
        membership = self._membership
        offsets = self._committable()
        await self._check_membership()
        if membership != self._membership or self._fenced is not None:
            return  # re-joined or lost meanwhile: nothing of this is committed
        self.app.tables.flush_changelogs()
        await self._topics_declared()
        producer = self.app.producer
        sequence = producer.mark()
        try:
            flushing = self.app.clock.monotonic()
            await wait_within(producer.wait_delivered(sequence), FLUSH_TIMEOUT_S)
            self.app.sensors.on_producer_flushed(self.app.clock.monotonic() - flushing)
        except TimeoutError:
            raise ProducerError(
                f"The producer could not deliver within {FLUSH_TIMEOUT_S:.0f} s: is the "
                "broker reachable, and do the topics the app writes exist?"
            ) from None
        if membership != self._membership or self._fenced is not None:
            return  # re-joined or lost meanwhile: nothing of this is committed
        self.app.tables.persist()
        if offsets and self.consumer is not None:
            try:
                await self.consumer.commit(offsets)
            except GroupMembershipLost as exc:
                # A zombie (stopped past its session timeout) or a rebalance:
                # not fatal, the group hands the partitions out again.
                logger.warning("Offsets not committed, the group moved on: %s. The "
                               "partitions' owners will process these events again.", exc)
                return
            if membership == self._membership:
                self.tracker.committed.update(offsets)
        self.app.tables.report_committed()

    def _committable(self) -> dict[TP, int]:
        """The processed offsets to commit, of assigned partitions only.

        A message of a partition this worker no longer owns (one delivered after
        its revoke) may have been processed here, but committing its offset could
        move the partition's new owner past events it never saw: Kafka checks the
        member and generation of a commit, not who owns the partition.
        """
        offsets = self.tracker.committable()
        assignment = self._assignment
        for tp in [tp for tp in offsets if tp not in assignment]:
            logger.warning("Not committing %s[%d] up to offset %d: the partition is not "
                           "assigned to this worker (a message delivered after its revoke)",
                           tp.topic, tp.partition, offsets.pop(tp))
            self.tracker.processed.pop(tp, None)
        return offsets

    async def _check_membership(self) -> None:
        """At-least-once, before table changelogs go out: make sure the group still
        counts this worker as a member, by committing again what it committed last.

        A worker frozen past its session timeout (a zombie: SIGSTOP, a long GC
        pause, a VM stall) would otherwise write its stale table values after its
        partitions' new owner wrote newer ones, and the changelog keeps the last.
        Raises :class:`ConsumerFailed`: the worker drops its uncommitted table
        writes and re-joins.
        """
        if self.consumer is None or not self.tracker.committed or not len(self.app.tables):
            return
        try:
            await self.consumer.commit(dict(self.tracker.committed))
        except GroupMembershipLost as exc:
            raise ConsumerFailed(
                f"the group moved on without this worker ({exc}); its table writes since "
                "the last checkpoint are dropped, not sent to the changelogs") from exc
        except TransportError as exc:
            # Not a verdict on membership (the broker unreachable, the consumer
            # stopping): the changelogs go out, the checkpoint's own commit decides.
            logger.warning("Could not check that the group still counts this worker as a "
                           "member before its table changelogs go out (%s)", exc)

    async def _topics_declared(self) -> None:
        """Wait for topics ``send_soon`` is creating: their messages would hold up the
        flush (or the transaction's commit)."""
        if self.app.declarations:
            pending, self.app.declarations = self.app.declarations, []
            await asyncio.gather(*pending)

    async def _commit_transaction(self, *, final: bool) -> None:
        assert self.transactions is not None and self.transactions.producer is not None
        producer = self.transactions.producer
        if not self._txn_open or self._fenced is not None:
            return  # after the final commit, or fenced (the fetch loop re-joins)
        if self._abort_at_stop:
            self._txn_open = False
            logger.warning("Exactly-once: the worker stops on an event an agent failed; the "
                           "open transaction (that event's effects with the others') is "
                           "aborted, and the next worker processes its events again")
            await producer.abort_transaction()
            await self.app.tables.discard_uncommitted()
            return
        if not final:
            await self._quiesce()
            if self._fenced is not None:
                return  # aborted meanwhile: the fetch loop re-joins
        await self._topics_declared()
        offsets = self._committable()
        self.app.tables.flush_changelogs()
        # No await since the offsets were taken: from here on the actors' sends go
        # to the next transaction, like their offsets.
        producer.prepare_commit()
        consumer = self.consumer
        if offsets and consumer is not None:
            try:
                metadata = await consumer.group_metadata()
            except GroupMembershipLost as exc:
                raise TransactionAborted(f"not committed: {exc}") from exc
            if self._fenced is not None:
                # Lost meanwhile: the metadata may be a later generation's, which
                # the coordinator would accept for this (stale) transaction.
                fenced, self._fenced = self._fenced, None
                raise fenced
            await producer.send_offsets_to_transaction(offsets, metadata)
        self._txn_open = False
        await producer.commit_transaction()
        # Only now may the stores keep what the changelog holds: an aborted
        # transaction's writes are never persisted.
        self.app.tables.persist()
        self.tracker.committed.update(offsets)
        self.app.tables.report_committed()
        if not final:
            await producer.begin_transaction()
            self._txn_open = True

    async def _quiesce(self) -> None:
        """Wait until no actor holds an unfinished event (bounded).

        Events still in the buffers have had no effect yet; an event an actor
        took but did not acknowledge may have (a table write, a send): a
        transaction must hold all of an event's effects and its offset, or none.
        The fetch loop is here, so no new events come in meanwhile.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + QUIESCE_TIMEOUT_S
        spins = 0
        while self._in_flight() > 0 and not self._abort_at_stop and self._fenced is None:
            if loop.time() > deadline:
                logger.warning(
                    "Exactly-once checkpoint: actors still hold unfinished events after %.0f s "
                    "(an agent waiting on ask(), take(within=), or a slow call?); committing "
                    "what is finished", QUIESCE_TIMEOUT_S)
                return
            spins += 1
            await asyncio.sleep(0 if spins < 20 else 0.001)

    async def settle(self) -> None:
        """Stopping: drop the buffered events, let the actors finish the ones they hold."""
        dropped = 0
        for buffer in self.buffers():
            dropped += len(buffer.items)
            buffer.items.clear()
        self._discarded_refs += dropped
        try:
            await self._quiesce()
        finally:
            self._discarded_refs -= dropped

    def events_in_hand(self) -> int:
        """Events the actors took and have not finished (the monitor's ``events_active``)."""
        return max(self._in_flight(), 0)

    def _in_flight(self) -> int:
        """Event references handed to actors and not acknowledged."""
        unacked = self.tracker.unacked_refs()
        buffered = sum(len(buffer) for buffer in self.buffers())
        return unacked - buffered - self._discarded_refs

    # -- rebalancing ---------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.app.sensors.rebalance_started()
        revoked = self._leadership(revoked, held=False)
        logger.info("Partitions revoked: %s", _fmt(revoked))
        await self.app.on_partitions_revoked.send(revoked)
        # Events still queued for revoked partitions are dropped (the new owner
        # reads them again); events an actor holds are finished first, so that
        # the checkpoint below commits them and nobody processes them twice.
        dropped: dict[int, int] = {}
        watched: set[TP] = set(revoked)
        discarded = 0
        for sub in self._by_topic_object.values():
            for buffer in sub.buffers:
                for message in buffer.discard(revoked):
                    dropped[id(message)] = dropped.get(id(message), 0) + 1
                    discarded += 1
                if not buffer.keeps_actors:
                    watched -= {tp for tp in revoked if tp.topic in buffer.topics}
        if not self._rejoining:
            await self._finish_in_flight(watched, dropped)
            self._discarded_refs = discarded
            try:
                await self.checkpoint()
            except (ProducerFenced, ConsumerFailed) as exc:
                # Handled by the fetch loop (this may run on the consumer's behalf).
                self._fenced = exc
            except FluvialError as exc:
                logger.error("Checkpoint on revoke failed: %s", exc)
                self.fail(exc)
            finally:
                self._discarded_refs = 0
        await self._give_up(revoked, clean=self._fenced is None)

    async def on_partitions_lost(self, lost: set[TP]) -> None:
        """The group dropped this worker (frozen past its session timeout: a zombie);
        other workers may own ``lost`` already and be processing them.

        Nothing of them may be committed, flushed or kept: no checkpoint, their
        queued events and table partitions are dropped, and the worker re-joins
        from the committed offsets as after a fencing (exactly-once: the open
        transaction is aborted; at-least-once: table writes not checkpointed are
        discarded instead of reaching the changelogs after the new owner's).
        """
        if TP(leader_topic_name(self.app), 0) in lost:
            self.set_leader(False)
            lost = lost - {TP(leader_topic_name(self.app), 0)}
        logger.warning(
            "Partitions lost: %s — the group went on without this worker (it did not "
            "heartbeat within broker_session_timeout=%.0f s: frozen, swapped out, or cut "
            "off); what it did not commit is discarded and it re-joins",
            _fmt(lost), self.app.conf.broker_session_timeout)
        reason = f"the partitions were lost: {_fmt(lost)}"
        if self._fenced is None:
            self._fenced = (TransactionAborted(reason) if self.transactions is not None
                            else ConsumerFailed(reason))
        for sub in self._by_topic_object.values():
            for buffer in sub.buffers:
                buffer.discard(lost)
        await self._give_up(lost, clean=False)

    async def _give_up(self, tps: set[TP], *, clean: bool) -> None:
        """Forget ``tps``: their offsets, assignment, recovery and table partitions
        (``clean=False``: their tables hold writes that were not checkpointed)."""
        self.tracker.forget(tps)
        self._assignment -= tps
        self._recovering -= {tp.partition for tp in tps}
        await self.app.tables.on_partitions_revoked(tps, clean=clean)

    async def _finish_in_flight(self, tps: set[TP], dropped: dict[int, int]) -> None:
        """Wait (bounded) until no actor holds an event of ``tps``."""
        if not tps:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + IN_FLIGHT_TIMEOUT_S
        while ((left := self.tracker.in_flight(tps, dropped)) and self.error is None
               and self._fenced is None):
            if loop.time() >= deadline:
                logger.warning(
                    "%d events of revoked partitions were still being processed after "
                    "%.0f s: abandoned (their offsets are not committed; the partitions' "
                    "new owner processes them again)", left, IN_FLIGHT_TIMEOUT_S)
                return
            await asyncio.sleep(0.005)

    def _leadership(self, tps: set[TP], *, held: bool) -> set[TP]:
        """Take the leader topic's partition out of ``tps`` and note the leadership.

        A revoke only suspends it (``is_leader()`` is false meanwhile): with
        Kafka's eager rebalancing every member gives everything up before the
        new assignment, so the ``on_leader`` tasks stop only once the next
        assignment goes to another worker.
        """
        leader_tp = TP(leader_topic_name(self.app), 0)
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
                    "is now" if leader else "is no longer", self.app.conf.id)
        self.app.scheduler.on_leadership(leader)

    async def on_partitions_assigned(self, assigned: set[TP]) -> None:
        assigned = self._leadership(assigned, held=True)
        self.app.membership.changed()  # a new generation: who owns what, where
        logger.info("Partitions assigned: %s", _fmt(assigned))
        sensors = self.app.sensors
        sensors.rebalance_returned()
        try:
            await self._assign(assigned)
        except BaseException as exc:
            sensors.rebalance_ended(exc)
            raise
        sensors.rebalance_ended()
        await self.app.on_partitions_assigned.send(assigned)
        await self.app.on_rebalance_complete.send()

    async def _assign(self, assigned: set[TP]) -> None:
        membership = self._membership
        self._assignment |= assigned
        # Tables behind their changelog are restored in the background; their
        # partitions stay paused until then, the others are processed at once.
        # No await between this and the pause below: the restore task cannot
        # report a partition before it is paused.
        recovering = await self.app.tables.on_partitions_assigned(
            assigned, on_restored=self._on_restored)
        if membership != self._membership:
            return  # re-joined meanwhile (exactly-once fencing): this assignment is void
        self._recovering |= recovering
        paused = [tp for tp in self._assignment
                  if tp.topic in self._paused or tp.partition in self._recovering]
        if paused and self.consumer is not None:
            self.consumer.pause(paused)

    @property
    def rejoins(self) -> int:
        """Times this worker re-joined its group after a fencing or a failed consumer."""
        return self.transactions.fenced if self.transactions is not None else self._pacing.count

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
        from .lifecycle import create_group_consumer

        transactions = self.transactions
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
            "committed offsets%s.", what, reason, self.app.conf.id,
            f" in {delay:.0f} s ({count} times lately)" if delay else "")
        self._rejoining = True
        self._txn_open = False
        # The old consumer's rebalance callbacks (one may be running) change nothing now.
        self._membership += 1
        try:
            old = self.consumer
            self.consumer = None
            if old is not None:
                await old.stop()
            for buffer in self.buffers():
                buffer.items.clear()
                buffer.draining = False
            self.tracker = OffsetTracker()
            self.set_leader(False)
            self._assignment.clear()
            self._recovering.clear()
            self._paused.clear()
            self._full.clear()
            await self.app.tables.discard_uncommitted()
            if delay:
                await asyncio.sleep(delay)
            if transactions is not None:
                await transactions.renew(keep=isinstance(reason, TransactionAborted))
                self._txn_open = True
            consumer = await create_group_consumer(self.app)
            self.consumer = consumer
            self._subscribe(consumer)
        finally:
            self._rejoining = False

    async def _on_restored(self, partitions: set[int]) -> None:
        """The tables of ``partitions`` are restored: process their events."""
        self._recovering -= partitions
        resumed = [tp for tp in self._assignment
                   if tp.partition in partitions and tp.topic not in self._paused]
        logger.info("Tables restored; partitions resumed: %s", _fmt(set(resumed)))
        if resumed and self.consumer is not None:
            self.consumer.resume(resumed)


def leader_topic_name(app: App) -> str:
    """The one-partition topic whose partition 0 makes a worker the leader (Faust's name)."""
    return f"{app.conf.id}-__assignor-__leader"


def _fmt(tps: set[TP]) -> str:
    by_topic: dict[str, list[int]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return ", ".join(f"{t}{sorted(p)}" for t, p in sorted(by_topic.items())) or "none"
