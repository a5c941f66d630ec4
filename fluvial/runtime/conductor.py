"""The conductor: fetch batches, decode them once per topic, hand them to streams,
and apply back-pressure. It wires the worker's runtime together: checkpoints
(:mod:`.checkpoints`) and rebalancing (:mod:`.rebalance`) work on a narrow
:class:`~.context.WorkerContext`, not on the app. See ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..buffers import EventBuffer
from ..clock import wait_event, wait_within
from ..exceptions import (
    ConsumerFailed,
    DecoderUnavailable,
    ProducerFenced,
    SerializationError,
    TransactionAborted,
    WorkerStopped,
)
from ..types import TP, ConsumerT, Message, SharedMessage
from .checkpoints import Checkpoints
from .context import WorkerContext
from .deadletter import dead_letter, position, shorten
from .rebalance import Rebalance, RebalanceHooks, leader_topic

if TYPE_CHECKING:
    from ..app import App
    from ..channels import Topic

__all__ = ["Conductor", "leader_topic_name"]

logger = logging.getLogger(__name__)

#: How long a full buffer may hold up fetching before its partitions are paused.
PAUSE_AFTER_S = 0.5


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
        self._paused: dict[str, set[EventBuffer]] = {}
        #: Buffers over their size that the fetch loop waits for (not yet paused).
        self._full: set[EventBuffer] = set()
        self._drained = asyncio.Event()
        self._resubscribe_needed = False
        #: References of revoked partitions' events dropped from the buffers (never acked).
        self.discarded_refs = 0
        #: The message a ``stop`` policy stopped the worker on.
        self._stopped_on: Message | None = None
        #: Counters for metrics and the banner.
        self.events_received = 0
        self.decode_errors = 0
        #: Messages sent to the dead-letter topic (undecodable, or failed processing).
        self.dead_lettered = 0
        self.ctx = WorkerContext(
            producer=lambda: app.producer, tables=app.tables, sensors=app.sensors,
            clock=lambda: app.clock, on_fatal=app.on_fatal, topics_declared=self._topics_declared)
        self.checkpoints = Checkpoints(self.ctx, in_flight=self._in_flight)
        self.rebalance = Rebalance(self.ctx, self.checkpoints, self, RebalanceHooks(
            settings=lambda: app.conf,
            on_leadership=app.scheduler.on_leadership,
            membership_changed=app.membership.changed,
            revoked=app.on_partitions_revoked.send,
            assigned=app.on_partitions_assigned.send,
            completed=app.on_rebalance_complete.send,
            new_consumer=self._new_consumer,
        ))

    # -- what other parts of the worker read ---------------------------------------

    @property
    def consumer(self) -> ConsumerT | None:
        """The group consumer (``None`` while re-joining)."""
        return self.ctx.consumer

    @property
    def error(self) -> BaseException | None:
        """The error the worker stops on."""
        return self.ctx.error

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
        if self.ctx.fetching:
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
        return set(self.ctx.assignment)

    def recovering(self) -> set[int]:
        """Partition numbers held back until their tables are restored."""
        return set(self.ctx.recovering)

    def buffers(self) -> list[EventBuffer]:
        """Every subscriber's buffer."""
        return [b for sub in self._by_topic_object.values() for b in sub.buffers]

    def paused_topics(self) -> set[str]:
        """Topics whose partitions are paused because a reader's buffer stayed full."""
        return set(self._paused)

    # -- what a rebalance asks of the fetch side (:class:`.rebalance.Intake`) ----------

    def discard(self, tps: set[TP]) -> tuple[dict[int, int], int, set[TP]]:
        dropped: dict[int, int] = {}
        watched: set[TP] = set(tps)
        discarded = 0
        for sub in self._by_topic_object.values():
            for buffer in sub.buffers:
                for message in buffer.discard(tps):
                    dropped[id(message)] = dropped.get(id(message), 0) + 1
                    discarded += 1
                if not buffer.keeps_actors:
                    watched -= {tp for tp in tps if tp.topic in buffer.topics}
        return dropped, discarded, watched

    def is_paused(self, topic: str) -> bool:
        return topic in self._paused

    def reset(self) -> None:
        for buffer in self.buffers():
            buffer.items.clear()
            buffer.draining = False
        self._paused.clear()
        self._full.clear()

    # -- lifetime ------------------------------------------------------------

    async def run(self, consumer: ConsumerT) -> None:
        """Fetch and dispatch until cancelled; the caller owns the consumer."""
        ctx = self.ctx
        ctx.consumer = consumer
        ctx.fetching = True
        self.subscribe_consumer(consumer)
        max_records = self.app.conf.broker_max_poll_records
        checkpoints = self.checkpoints
        checkpoints.every = self.app.conf.broker_commit_every
        flow = self.app.flow_control
        tracker = ctx.offsets
        try:
            while True:
                if ctx.rejoin_reason is not None:
                    reason, ctx.rejoin_reason = ctx.rejoin_reason, None
                    await self.rebalance.rejoin(reason)
                if self._resubscribe_needed:
                    await self._resubscribe()
                if self._full:
                    await self._wait_for_room()
                if not flow.is_active():
                    await self._wait_for_flow()
                    continue
                assert ctx.consumer is not None
                try:
                    messages = await ctx.consumer.getmany(max_records, 0.2)
                except ConsumerFailed as exc:
                    await self.rebalance.rejoin(exc)
                    continue
                if messages:
                    self.dispatch(messages)
                    checkpoints.fetched(len(messages))
                tracker.advance()
                if checkpoints.due:
                    # Exactly-once: in the fetch loop, not beside it, since a
                    # transaction holds whole events: nothing new comes in while
                    # the actors finish theirs and the transaction commits.
                    # At-least-once checkpoints run beside it (Checkpoints.run).
                    await self._checkpoint_here()
                # Let the actors run before fetching more.
                await asyncio.sleep(0)
        finally:
            ctx.fetching = False
            await self.app.tables.stop_recovery()

    async def _checkpoint_here(self) -> None:
        try:
            await self.checkpoints.checkpoint()
        except (ProducerFenced, ConsumerFailed) as exc:
            await self.rebalance.rejoin(exc)

    async def _wait_for_flow(self) -> None:
        """``app.flow_control`` is suspended: fetch nothing, keep checkpointing."""
        try:
            await wait_within(self.app.flow_control.acquire(), 0.2)
        except TimeoutError:
            pass
        if self.checkpoints.due:
            await self._checkpoint_here()

    async def _resubscribe(self) -> None:
        self._resubscribe_needed = False
        await self.app.declare_topics([sub.topic for sub in self._by_topic_object.values()])
        assert self.ctx.consumer is not None
        self.subscribe_consumer(self.ctx.consumer)

    def subscribe_consumer(self, consumer: ConsumerT) -> None:
        """Subscribe ``consumer`` to the worker's topics, rebalances going to
        :attr:`rebalance` while its generation lasts."""
        ctx = self.ctx
        generation = ctx.generation
        rebalance = self.rebalance

        async def on_assign(assigned: set[TP]) -> None:
            if generation == ctx.generation:
                await rebalance.assigned(assigned)

        async def on_revoke(revoked: set[TP]) -> None:
            if generation == ctx.generation:
                await rebalance.revoked(revoked)

        async def on_lost(lost: set[TP]) -> None:
            if generation == ctx.generation:
                await rebalance.lost(lost)

        # The leader topic is always subscribed: the group's range assignor gives
        # its one partition to exactly one member, the leader (as Faust elects it).
        names = sorted({*self.topic_names, leader_topic_name(self.app)})
        consumer.subscribe(names, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    async def _new_consumer(self) -> ConsumerT:
        from .lifecycle import create_group_consumer

        return await create_group_consumer(self.app)

    async def _topics_declared(self) -> None:
        """Wait for topics ``send_soon`` is creating: their messages would hold up a
        delivery wait (or the transaction's commit)."""
        if self.app.declarations:
            pending, self.app.declarations = self.app.declarations, []
            await asyncio.gather(*pending)

    # -- dispatch --------------------------------------------------------------

    def dispatch(self, messages: list[Message]) -> None:
        """Decode a batch per topic and queue it for every subscriber.

        The messages themselves are queued, their key and value decoded into
        them (``decoded_key``, ``decoded_value``): an :class:`~fluvial.events.Event`
        is made only if user code asks for it. A second ``Topic`` object reading
        the topic (another schema) gets a :class:`~fluvial.types.SharedMessage` of each.
        """
        if self.ctx.error is not None:
            return  # stopping: nothing more is processed (nor tracked, nor committed)
        by_topic: dict[str, list[Message]] = {}
        for message in messages:
            batch = by_topic.get(message.topic)
            if batch is None:
                by_topic[message.topic] = [message]
            else:
                batch.append(message)
        self.events_received += len(messages)
        tracker = self.ctx.offsets
        sensors = self.app.sensors
        sensed = sensors.messages  # once per batch: no sensor, no cost
        for topic, batch in by_topic.items():
            subs = self._subscribers(topic)
            if not subs:
                continue  # not ours any more (resubscribed); not tracked, never committed
            receivers = sum(len(sub.buffers) for sub in subs)
            Message.hold_all(batch, receivers)
            tracker.track(topic, batch)
            if sensed:
                sensors.on_messages_in(topic, batch)
            decoded = [(sub, self._decode(sub, batch, shared=i > 0))
                       for i, sub in enumerate(subs)]
            if self.ctx.error is not None:
                # decode_error_policy=stop: no subscriber sees the bad message or
                # any after it (never acknowledged, so never committed).
                decoded = self._before_stop(batch, decoded)
            for sub, items in decoded:
                for buffer in sub.buffers:
                    buffer.put_many(items)
                    if buffer.full and not buffer.draining:
                        buffer.draining = True
                        self._full.add(buffer)
            if self.ctx.error is not None:
                return

    def _before_stop(self, batch: list[Message], decoded: list[tuple[Subscription, list[Message]]]
                     ) -> list[tuple[Subscription, list[Message]]]:
        """The events of ``batch`` before the message a ``stop`` policy stopped on."""
        stopped = self._stopped_on
        cut = next((i for i, m in enumerate(batch) if m is stopped), len(batch))
        keep = {id(m) for m in batch[:cut]}
        return [(sub, [m for m in items if id(m.origin) in keep]) for sub, items in decoded]

    def _decode(self, sub: Subscription, batch: list[Message], *, shared: bool = False
                ) -> list[Message]:
        """Decode ``batch`` for ``sub`` into the messages (``shared``: into copies, a
        topic's first subscription having decoded into the messages themselves)."""
        items: list[Message] = [SharedMessage(m) for m in batch] if shared else batch
        ck = sub.convert_key
        cv = sub.convert_value
        try:
            if ck is None:
                for m in items:
                    m.decoded_key = m.key
                    m.decoded_value = cv(m.value)
            else:
                for m in items:
                    m.decoded_key = ck(m.key)
                    m.decoded_value = cv(m.value)
            return items
        except Exception:
            pass
        # Something in the batch did not decode: one message at a time, each
        # failure handled by the policy. Whatever a decoder raises (a codec
        # letting out a MemoryError or RecursionError included) is the
        # message's fault, not the worker's.
        dk = sub.decode_key
        dv = sub.decode_value
        decoded = []
        for m in items:
            try:
                m.decoded_key = dk(m.key)
                m.decoded_value = dv(m.value)
            except DecoderUnavailable as exc:
                logger.error("Cannot decode message %s: %s. Stopping without committing it.",
                             position(m), exc)
                m.never_commit()
                self._stopped_on = m.origin
                self.fail(exc)
                break
            except Exception as exc:
                if not self._on_decode_error(sub, m, exc):
                    break
            else:
                decoded.append(m)
        return decoded

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
            self._stop_on(message.origin,
                          f"Undecodable message at {where} not dead-lettered: {failed}")
            return False
        if policy == "stop":
            logger.error("Cannot decode message %s: %s. Stopping (decode_error_policy=stop).",
                         where, shown)
            self._stop_on(message.origin, f"Undecodable message at {where}: {shown}")
            return False
        message.release(len(sub.buffers))
        logger.error("Cannot decode message %s: %s. Skipped (decode_error_policy=skip).",
                     where, shown)
        return True

    def _stop_on(self, message: Message, reason: str) -> None:
        # Never acknowledged: its offset is not committed, a restart sees it again.
        message.never_commit()
        if self.ctx.error is None:
            self._stopped_on = message
        self.fail(WorkerStopped(reason))


    def abort_transaction(self, reason: str) -> None:
        """Exactly-once: drop the open transaction and what it holds, and re-join from
        the committed offsets (as after a fencing), so that its events are processed
        again from a clean state (an agent retries an event it raised on)."""
        self.ctx.owe_rejoin(TransactionAborted(reason))
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
            self.checkpoints.abort_at_stop = True
        self.ctx.fail(error)

    # -- in flight -----------------------------------------------------------------

    async def settle(self) -> None:
        """Stopping: drop the buffered events, let the actors finish the ones they hold."""
        dropped = 0
        for buffer in self.buffers():
            dropped += len(buffer.items)
            buffer.items.clear()
        self.discarded_refs += dropped
        try:
            await self.checkpoints.quiesce()
        finally:
            self.discarded_refs -= dropped

    def events_in_hand(self) -> int:
        """Events the actors took and have not finished (the monitor's ``events_active``)."""
        return max(self._in_flight(), 0)

    def _in_flight(self) -> int:
        """Event references handed to actors and not acknowledged."""
        unacked = self.ctx.offsets.unacked_refs()
        buffered = sum(len(buffer) for buffer in self.buffers())
        return unacked - buffered - self.discarded_refs

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
                to_pause.extend(tp for tp in self.ctx.assignment if tp.topic == topic)
            holders.add(buffer)
        if to_pause and self.ctx.consumer is not None:
            self.ctx.consumer.pause(to_pause)
            for tp in to_pause:
                self.ctx.sensors.on_topic_buffer_full(tp)

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
                to_resume.extend(tp for tp in self.ctx.assignment
                                 if tp.topic == topic and tp.partition not in self.ctx.recovering)
        if to_resume and self.ctx.consumer is not None:
            self.ctx.consumer.resume(to_resume)



def leader_topic_name(app: App) -> str:
    """The one-partition topic whose partition 0 makes a worker the leader (Faust's name)."""
    return leader_topic(app.conf.id)
