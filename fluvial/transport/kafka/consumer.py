"""The Kafka consumer: one thread owns the librdkafka consumer, the loop reads batches.

Threading model (see ARCHITECTURE.md, "The life of an event"):

* confluent-kafka serializes concurrent calls on one ``Consumer`` (since 2.x):
  a call from another thread waits until ``consume()`` returns, and can starve.
  So the *consumer thread* makes every call on the handle. The loop enqueues
  state changes (subscribe, assign, seek, pause, resume), run between two
  ``consume()`` calls, and requests (commit, committed, watermarks) whose
  results come back as futures.
* Fetched batches are converted to :class:`~fluvial.types.Message` on the
  thread and handed to the loop whole with ``call_soon_threadsafe``. At most
  ``max_pending_batches`` handed-off batches may be unread; then the thread
  waits (and, like any Kafka consumer that is not polled, is removed from the
  group after ``max.poll.interval.ms``: pause partitions for back-pressure).
* Rebalance callbacks run inside ``consume()`` on the thread and block on the
  loop (``run_coroutine_threadsafe``) so the application's revoke/assign
  handling completes before librdkafka proceeds. While waiting, the thread
  keeps serving requests, so ``await consumer.commit(...)`` works in ``on_revoke``.
* Commits do not stop the thread: it sends them asynchronously and goes on
  fetching; their results come back with a later ``consume()`` (librdkafka's
  commit callback) and resolve the callers' futures. A synchronous commit would
  hold up every message behind it for a commit round trip (7 ms on loopback,
  twice per checkpoint with tables). Inside a rebalance callback, where no
  ``consume()`` can run, commits are synchronous; an asynchronous one still out
  when a rebalance callback begins gets :class:`GroupRebalancing` (revoke,
  assign) or :class:`GroupMembershipLost` (lost) instead of its result.

Generations: ``assign()`` and ``seek()`` bump a counter; each batch carries the
counter value of the last command the thread ran before fetching it. A batch
fetched before an ``assign`` is dropped whole, and messages fetched before a
``seek`` of their partition are dropped: librdkafka re-fetches from the new
position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from functools import partial
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as RawMessage

from ...clock import wait_event
from ...exceptions import (
    CommitError,
    ConsumerFailed,
    GroupMembershipLost,
    GroupRebalancing,
    TransportError,
)
from ...types import TP, Message, RebalanceCallback
from ._buffer import FetchBuffer
from ._config import describe_error, log_client_error
from .message import KafkaMessage

__all__ = ["CONSUMER_DEFAULTS", "KafkaConsumer"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

CONSUMER_DEFAULTS: dict[str, Any] = {
    # Equal partition numbers of equally-partitioned topics go to the same
    # member: this is how co-partitioning works without a custom assignor.
    "partition.assignment.strategy": "range",
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": False,
    # Throughput: large fetches and a deep prefetch queue, but a short broker
    # wait so that a trickle of messages is not delayed. 16 MB per partition
    # and 200k messages ahead read the bench's plain pipeline ~18 % faster
    # than 4 MB and 50k (190k against 160k events/s, alternating runs); the
    # prefetch stays bounded by queued.max.messages.kbytes.
    "fetch.wait.max.ms": 100,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    "queued.min.messages": 200_000,
    "queued.max.messages.kbytes": 131_072,
    # With the prefetch queue full, librdkafka waits this long before it fetches
    # again (1 s by default): long enough to empty a small queue and idle.
    "fetch.queue.backoff.ms": 10,
}

#: How long the thread blocks in one ``consume()`` when nothing is queued; it
#: bounds the delay of commands and requests issued while the consumer is idle.
_BLOCK_S = 0.05
#: With every hand-off slot taken and a commit out, how often the thread calls
#: ``consume()`` for at most one message, to be given the commit's result.
_COMMIT_POLL_S = 0.005
#: What a request returns when it resolves its future later (an asynchronous commit).
_LATER = object()
# Reported as messages by librdkafka, also briefly right after a topic is created.
#: How long metadata queries retry errors that go away once a partition has a leader.
METADATA_RETRY_S = 30.0

_TRANSIENT_CODES = frozenset({
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._DESTROY_BROKER,
})

#: Errors of a metadata query that waiting does not cure.
_PERMANENT_CODES = frozenset({
    KafkaError._INVALID_ARG,
    KafkaError._UNSUPPORTED_FEATURE,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
})

#: Commit errors that mean the group moved on without this member.
_MEMBERSHIP_LOST = frozenset({
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError._ASSIGNMENT_LOST,
})

#: Errors after which librdkafka cannot go on with the consumer.
_FATAL_CODES = frozenset({KafkaError._FATAL, KafkaError.FENCED_INSTANCE_ID})

_UNKNOWN_TOPIC_CODES = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}
)

_Request = tuple[Callable[[], Any], "asyncio.Future[Any]"]
#: What an asynchronous commit's result is matched by: its offsets.
_CommitKey = frozenset[tuple[str, int, int]]


def _commit_key(parts: Iterable[TopicPartition]) -> _CommitKey:
    return frozenset((p.topic, p.partition, p.offset) for p in parts)


def _convert(raws: list[RawMessage]) -> tuple[list[Message], list[KafkaError]]:
    """confluent-kafka messages -> fluvial Messages: the per-event hot loop."""
    out: list[Message] = []
    errors: list[KafkaError] = []
    append = out.append
    new = KafkaMessage
    for m in raws:
        err = m.error()
        if err is not None:
            errors.append(err)
            continue
        append(new(m, m.topic(), m.partition(), m.offset(), m.key(), m.value()))  # type: ignore[arg-type]
    return out, errors


def _parts(tps: Iterable[TP]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t, p in tps]


class KafkaConsumer:
    """A :class:`~fluvial.types.ConsumerT` on librdkafka (see the module docstring)."""

    def __init__(
        self,
        config: dict[str, Any],
        *,
        group_id: str | None,
        batch_size: int = 10_000,
        max_pending_batches: int = 2,
        request_timeout_s: float = 30.0,
        convert: Callable[[list[RawMessage]], tuple[list[Any], list[KafkaError]]] = _convert,
    ) -> None:
        """``convert`` turns each fetched batch into what ``getmany`` returns, on the
        consumer thread: Messages by default (anything else must have ``topic`` and
        ``partition`` attributes, as the buffer's pause and seek handling reads them)."""
        cfg = dict(CONSUMER_DEFAULTS)
        cfg.update(config)
        # librdkafka wants a group.id even for manual assignment; such a
        # consumer never joins, commits or reads committed offsets.
        cfg["group.id"] = group_id if group_id is not None else f"fluvial-assign-{uuid.uuid4()}"
        cfg["error_cb"] = self._on_client_error
        cfg["on_commit"] = self._on_commit
        self.group_id = group_id
        self._consumer = Consumer(cfg)
        self._batch_size = batch_size
        self._convert = convert
        self._max_pending = max_pending_batches
        self._timeout_s = request_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_assign_cb: RebalanceCallback | None = None
        self._on_revoke_cb: RebalanceCallback | None = None
        self._on_lost_cb: RebalanceCallback | None = None
        # Loop side.
        self._buffer = FetchBuffer(self._release)
        self._assigned: set[TP] = set()
        self._errors: deque[BaseException] = deque()
        self._dead: BaseException | None = None
        self._ready = asyncio.Event()
        self._gen = 0
        self._assign_gen = 0
        self._seek_gens: dict[TP, int] = {}
        self._closed: asyncio.Future[None] | None = None
        self._stop_called = False
        # Shared with the consumer thread (guarded by _cond).
        self._cond = threading.Condition()
        self._commands: deque[tuple[int, Callable[[], None]]] = deque()
        self._requests: deque[_Request] = deque()
        self._pending = 0  # handed-off batches not yet fully read
        self._stopping = False
        self._finished = False
        self._thread: threading.Thread | None = None
        self._thread_gen = 0  # consumer thread only
        # Consumer thread only: the asynchronous commits out, oldest first, by
        # their offsets (their results may come in another order), each with its
        # future (None once a rebalance abandoned it); and whether the thread is
        # inside a rebalance callback.
        self._commits: list[tuple[_CommitKey, asyncio.Future[Any] | None]] = []
        self._in_callback = False

    @property
    def client(self) -> Consumer:
        """The confluent-kafka consumer; call it only from the consumer's callbacks."""
        return self._consumer

    # -- lifetime --------------------------------------------------------------
    async def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        self._thread = threading.Thread(
            target=self._run, name="fluvial-kafka-consumer", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Leave the group and release the consumer (idempotent)."""
        if self._stop_called:
            if self._closed is not None:
                await asyncio.shield(self._closed)
            return
        self._stop_called = True
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._closed is None:  # never started: no other thread uses the handle
            await asyncio.get_running_loop().run_in_executor(None, self._consumer.close)
            self._finished = True
        else:
            await asyncio.shield(self._closed)

    # -- group membership and assignment (state commands) ------------------------
    def subscribe(
        self,
        topics: Iterable[str],
        *,
        on_assign: RebalanceCallback,
        on_revoke: RebalanceCallback,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        """Join the consumer group for ``topics`` (may be called again to change them)."""
        if self.group_id is None:
            raise TransportError("A consumer created with group_id=None cannot subscribe")
        self._on_assign_cb = on_assign
        self._on_revoke_cb = on_revoke
        self._on_lost_cb = on_lost
        self._command(
            partial(
                self._consumer.subscribe,
                sorted(set(topics)),
                on_assign=self._rebalance_assign,
                on_revoke=self._rebalance_revoke,
                on_lost=self._rebalance_lost,
            )
        )

    def assign(self, offsets: Mapping[TP, int]) -> None:
        """Read exactly these partitions from these offsets (no group)."""
        self._gen += 1
        self._assign_gen = self._gen
        self._seek_gens.clear()
        self._buffer.clear()
        self._assigned = set(offsets)
        parts = [TopicPartition(t, p, off) for (t, p), off in offsets.items()]
        consumer = self._consumer

        def assign() -> None:
            consumer.assign(parts)
            # librdkafka keeps a partition paused across assign() when it stays
            # assigned; the buffer forgot its pauses above, so must librdkafka (a
            # restore consumer re-used for a later recovery fetched nothing of the
            # partitions it had paused in the previous one).
            consumer.resume(parts)

        self._command(assign)

    def assignment(self) -> set[TP]:
        return set(self._assigned)

    def seek(self, tp: TP, offset: int) -> None:
        tp = TP(*tp)
        self._gen += 1
        self._seek_gens[tp] = self._gen
        self._buffer.drop({tp})
        self._command(partial(self._consumer.seek, TopicPartition(tp.topic, tp.partition, offset)))

    def pause(self, tps: Iterable[TP]) -> None:
        new = {TP(*tp) for tp in tps} - self._buffer.paused
        if new:
            self._buffer.pause(new)
            self._command(partial(self._consumer.pause, _parts(new)))

    def resume(self, tps: Iterable[TP]) -> None:
        resumed = self._buffer.paused.intersection(TP(*tp) for tp in tps)
        if not resumed:
            return
        if self._buffer.resume(resumed):
            with self._cond:
                self._pending += 1  # the held messages came back as one batch
            self._ready.set()
        self._command(partial(self._consumer.resume, _parts(resumed)))

    def _command(self, fn: Callable[[], None]) -> None:
        with self._cond:
            self._commands.append((self._gen, fn))
            self._cond.notify_all()

    # -- reading ----------------------------------------------------------------
    async def getmany(self, max_records: int, timeout: float) -> list[Message]:
        """Return up to ``max_records`` messages, waiting at most ``timeout`` seconds."""
        self._raise_pending()
        if not self._buffer and timeout > 0:
            self._ready.clear()
            await wait_event(self._ready, timeout)
            self._raise_pending()
        return self._buffer.take(max_records)

    def _raise_pending(self) -> None:
        if self._errors:
            raise self._errors.popleft()
        if self._dead is not None:
            raise TransportError(f"The Kafka consumer thread died: {self._dead!r}") from self._dead

    def _release(self, n: int) -> None:
        with self._cond:
            self._pending -= n
            self._cond.notify_all()

    # -- offsets (requests) ------------------------------------------------------
    async def commit(self, offsets: Mapping[TP, int]) -> None:
        """Commit ``offsets`` (the next offset to read) for the group."""
        if self.group_id is None:
            raise CommitError("A consumer created with group_id=None has no group to commit to")
        if not offsets:
            return
        parts = [TopicPartition(t, p, off) for (t, p), off in offsets.items()]
        try:
            result = await self._request_commit(parts)
        except (GroupRebalancing, GroupMembershipLost):
            raise
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            cls: type[CommitError] = CommitError
            if isinstance(err, KafkaError):
                if err.fatal() or err.code() in _FATAL_CODES:
                    raise ConsumerFailed(
                        f"The Kafka consumer of group {self.group_id!r} failed fatally "
                        f"while committing: {describe_error(exc)}") from exc
                if err.code() in _MEMBERSHIP_LOST:
                    cls = GroupMembershipLost
            raise cls(
                f"Committing offsets of group {self.group_id!r} failed: {describe_error(exc)}"
            ) from exc
        except (TransportError, RuntimeError) as exc:
            raise CommitError(
                f"Committing offsets of group {self.group_id!r} failed: {describe_error(exc)}"
            ) from exc
        failed = [tp for tp in result if tp.error is not None]
        if failed:
            detail = ", ".join(f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in failed)
            raise CommitError(f"Committing offsets of group {self.group_id!r} failed: {detail}")

    async def _request_commit(self, parts: list[TopicPartition]) -> list[TopicPartition]:
        """Commit ``parts`` from the consumer thread: the committed partitions, each
        with its error if any; raises KafkaException for the commit as a whole."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[TopicPartition]] = loop.create_future()
        consumer = self._consumer

        def commit() -> Any:
            key = _commit_key(parts)
            if (self._in_callback or threading.current_thread() is not self._thread
                    or any(k == key for k, _ in self._commits)):
                # No consume() can run now to hand over an asynchronous result, or
                # one out has the same offsets (its result would be told apart
                # from this one's by nothing).
                return consumer.commit(offsets=parts, asynchronous=False)
            consumer.commit(offsets=parts, asynchronous=True)
            self._commits.append((key, fut))
            return _LATER

        return await self._request(commit, fut)

    async def committed(self, tps: Iterable[TP]) -> dict[TP, int | None]:
        tps = [TP(*tp) for tp in tps]
        if self.group_id is None or not tps:
            return dict.fromkeys(tps)
        consumer, timeout = self._consumer, self._timeout_s

        def query() -> list[TopicPartition]:
            if self._stopping:
                # librdkafka does not answer OffsetFetch while the group is
                # being left: it would only time out.
                raise TransportError("Committed offsets cannot be read while the consumer stops")
            return consumer.committed(_parts(tps), timeout=timeout)

        try:
            result = await self._request(query)
        except KafkaException as exc:
            raise TransportError(
                f"Reading committed offsets of group {self.group_id!r} failed: "
                f"{describe_error(exc)}"
            ) from exc
        return {TP(r.topic, r.partition): (r.offset if r.offset >= 0 else None) for r in result}

    async def position(self, tps: Iterable[TP]) -> dict[TP, int | None]:
        """The next offset to read; librdkafka moves it past transaction markers."""
        wanted = [TP(*tp) for tp in tps]
        consumer = self._consumer
        try:
            result = await self._request(lambda: consumer.position(_parts(wanted)))
        except KafkaException as exc:
            raise TransportError(f"Reading positions failed: {describe_error(exc)}") from exc
        return {TP(r.topic, r.partition): (r.offset if r.offset >= 0 else None) for r in result}

    async def group_metadata(self) -> Any:
        """The consumer's group metadata, read on the consumer thread.

        Raises :class:`GroupMembershipLost` while the consumer is no member of
        its group (dropped after a session timeout, not re-joined yet): the
        coordinator would accept a transaction's offsets sent with that metadata
        (no member id, generation -1) unchecked, so a zombie could commit them.
        """
        if self.group_id is None:
            raise TransportError("A consumer created with group_id=None has no group metadata")
        consumer = self._consumer

        def read() -> Any:
            if not consumer.memberid():
                raise GroupMembershipLost(
                    f"The consumer is no member of group {self.group_id!r} (dropped from it, "
                    "not re-joined yet)")
            return consumer.consumer_group_metadata()

        return await self._request(read)

    async def end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The high-water mark (offset after the last message) of each partition.

        For a ``read_committed`` consumer, the last stable offset (LSO).
        """
        marks = await self._watermarks(tps)
        return {tp: high for tp, (_, high) in marks.items()}

    async def beginning_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        marks = await self._watermarks(tps)
        return {tp: low for tp, (low, _) in marks.items()}

    async def _watermarks(self, tps: Iterable[TP]) -> dict[TP, tuple[int, int]]:
        consumer, timeout = self._consumer, self._timeout_s
        wanted = [TP(*tp) for tp in tps]

        def query() -> dict[TP, tuple[int, int]]:
            result: dict[TP, tuple[int, int]] = {}
            for tp in wanted:
                try:
                    marks = consumer.get_watermark_offsets(
                        TopicPartition(tp.topic, tp.partition), timeout=timeout, cached=False
                    )
                except KafkaException as exc:
                    err = exc.args[0] if exc.args else None
                    if isinstance(err, KafkaError) and err.code() in _TRANSIENT_CODES:
                        # librdkafka's cached metadata may lack the partition (its
                        # leader was on a broker that went away) and is refreshed only
                        # every few minutes for topics it merely assigns: ask now.
                        with contextlib.suppress(KafkaException):
                            consumer.list_topics(tp.topic, timeout=timeout)
                    raise
                if marks is None:
                    raise TransportError(f"No watermark offsets for {tp.topic}[{tp.partition}]")
                result[tp] = (marks[0], marks[1])
            return result

        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self._timeout_s, METADATA_RETRY_S)
        delay = 0.1
        while True:
            try:
                return await self._request(query)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                # During a broker outage librdkafka reports many local states
                # (_UNKNOWN_PARTITION, _DESTROY_BROKER, _TRANSPORT…): retry all
                # but the errors that cannot go away by themselves.
                transient = isinstance(err, KafkaError) and err.code() not in _PERMANENT_CODES
                if not transient or loop.time() >= deadline:
                    raise TransportError(
                        f"Reading watermark offsets failed: {describe_error(exc)}"
                    ) from exc
                # A partition without a leader for a moment (a broker went away,
                # a topic was just created): ask again.
                logger.info("Watermark offsets not available yet (%s); retrying",
                            describe_error(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _request(self, fn: Callable[[], T], fut: asyncio.Future[T] | None = None) -> T:
        """Run ``fn`` on the consumer thread (the only thread that may use the handle);
        its result resolves ``fut`` (a new future if None), unless ``fn`` returns
        ``_LATER`` and resolves it itself afterwards."""
        loop = asyncio.get_running_loop()
        if self._thread is None:  # not started: no other thread uses the handle yet
            return await loop.run_in_executor(None, fn)
        if fut is None:
            fut = loop.create_future()
        with self._cond:
            if self._finished:
                raise TransportError("The Kafka consumer is stopped")
            self._requests.append((fn, fut))
            self._cond.notify_all()
        return await fut

    # -- consumer thread ----------------------------------------------------------
    def _run(self) -> None:
        consumer = self._consumer
        loop = self._loop
        assert loop is not None
        cond = self._cond
        batch_size, max_pending = self._batch_size, self._max_pending
        convert = self._convert
        try:
            while True:
                with cond:
                    while (
                        not self._stopping
                        and not self._commands
                        and not self._requests
                        and self._pending >= max_pending
                    ):
                        if self._commits:
                            cond.wait(_COMMIT_POLL_S)
                            break
                        cond.wait()
                    stopping = self._stopping
                self._serve_requests()
                if stopping:
                    break
                self._run_commands()
                if self._pending >= max_pending:
                    if not self._commits:
                        continue
                    # Every hand-off slot is taken, but a commit's result comes
                    # only with a consume(): take at most one message meanwhile.
                    raws = consumer.consume(1, 0)
                    if not raws:
                        continue
                else:
                    raws = consumer.consume(batch_size, 0)
                if not raws:
                    # consume(n, t) waits for n messages or t seconds: block for
                    # one; the next round takes whatever else is queued. Never
                    # merge the results of two calls: a rebalance served by the
                    # second would find the first's messages of revoked partitions
                    # held here (librdkafka purges those only within one call),
                    # and they would be processed — and committed — after the revoke.
                    raws = consumer.consume(1, _BLOCK_S)
                    if not raws:
                        continue
                batch, errors = convert(raws)
                if batch:
                    with cond:
                        self._pending += 1
                loop.call_soon_threadsafe(self._receive, batch, self._thread_gen, errors)
        except BaseException as exc:
            logger.exception("Kafka consumer thread crashed")
            self._post(self._set_dead, exc)
        finally:
            try:
                consumer.close()  # leaves the group; serves the final revoke
            except Exception:
                logger.exception("Closing the Kafka consumer failed")
            with cond:
                self._finished = True
                leftover = list(self._requests)
                self._requests.clear()
            futures = [fut for _, fut in leftover]
            futures += [fut for _, fut in self._commits if fut is not None]
            self._commits.clear()
            for fut in futures:
                self._post(_resolve, fut, None, TransportError("The Kafka consumer is stopped"))
            self._post(self._set_closed)

    def _run_commands(self) -> None:
        commands = self._commands
        while commands:
            with self._cond:
                gen, command = commands.popleft()
            try:
                command()
            except KafkaException as exc:
                self._post_error(TransportError(f"Kafka consumer: {describe_error(exc)}"))
            self._thread_gen = gen

    def _serve_requests(self) -> None:
        requests = self._requests
        while requests:
            with self._cond:
                fn, fut = requests.popleft()
            try:
                result = fn()
            except BaseException as exc:
                self._post(_resolve, fut, None, exc)
            else:
                if result is not _LATER:
                    self._post(_resolve, fut, result, None)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        assert loop is not None
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            pass

    def _post_error(self, exc: BaseException) -> None:
        self._post(self._add_error, exc)

    # -- on the thread, inside consume() -----------------------------------------------
    def _rebalance_assign(self, _consumer: Consumer, parts: list[TopicPartition]) -> None:
        self._abandon_commits(lost=False)
        self._on_loop(self._handle_assign({TP(p.topic, p.partition) for p in parts}))

    def _rebalance_revoke(self, _consumer: Consumer, parts: list[TopicPartition]) -> None:
        self._abandon_commits(lost=False)
        self._on_loop(self._handle_revoke({TP(p.topic, p.partition) for p in parts}))

    def _rebalance_lost(self, _consumer: Consumer, parts: list[TopicPartition]) -> None:
        self._abandon_commits(lost=True)
        self._on_loop(self._handle_revoke({TP(p.topic, p.partition) for p in parts}, lost=True))

    def _on_commit(self, err: KafkaError | None, parts: list[TopicPartition] | None) -> None:
        """librdkafka's commit callback, inside ``consume()``: an asynchronous
        commit's result (told by its offsets) resolves its future."""
        commits = self._commits
        if not commits:
            return
        key = _commit_key(parts or ())
        at = next((i for i, (k, _) in enumerate(commits) if k == key), 0)
        _, fut = commits.pop(at)
        if fut is None:
            return  # abandoned at a rebalance
        if err is not None and err.code() != KafkaError.NO_ERROR:
            self._post(_resolve, fut, None, KafkaException(err))
        else:
            self._post(_resolve, fut, parts or [], None)

    def _abandon_commits(self, *, lost: bool) -> None:
        """A rebalance callback begins: the results of the asynchronous commits out
        would come only after it, which may wait for them (a revoke checkpoints)."""
        commits = self._commits
        for i, (key, fut) in enumerate(commits):
            if fut is None:
                continue
            commits[i] = (key, None)
            exc: TransportError
            if lost:
                exc = GroupMembershipLost(
                    f"Group {self.group_id!r} dropped this member while it committed")
            else:
                exc = GroupRebalancing(
                    f"Group {self.group_id!r} began a rebalance while this member committed; "
                    "whether the commit went through is not known")
            self._post(_resolve, fut, None, exc)

    def _on_loop(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` on the loop and wait for it, serving requests meanwhile."""
        loop = self._loop
        assert loop is not None
        try:
            fut = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError:  # the loop is closed
            coro.close()
            return
        fut.add_done_callback(lambda _: self._wake())
        self._in_callback = True
        try:
            while True:
                self._serve_requests()
                if fut.done():
                    break
                with self._cond:
                    if not self._requests and not fut.done():
                        self._cond.wait(1.0)
                if loop.is_closed():
                    return
        finally:
            self._in_callback = False
        exc = fut.exception()
        if exc is not None:
            logger.error("Rebalance callback failed: %r", exc)
            self._post_error(exc)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _on_client_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._post_error(
                ConsumerFailed(f"The Kafka consumer failed fatally: {err.name()}: {err.str()}")
            )
        else:
            log_client_error(err, "consumer", logger)

    # -- on the loop, called from the thread ----------------------------------------------
    def _receive(self, batch: list[Message], gen: int, errors: list[KafkaError]) -> None:
        for err in errors:
            if err.code() in _UNKNOWN_TOPIC_CODES:
                logger.warning("Kafka consumer: %s", err.str())
            elif err.fatal() or err.code() in _FATAL_CODES:
                self._add_error(ConsumerFailed(
                    f"The Kafka consumer failed fatally: {err.name()}: {err.str()}"))
            elif err.code() == KafkaError.INCONSISTENT_GROUP_PROTOCOL:
                self._add_error(TransportError(
                    f"Cannot join consumer group {self.group_id!r}: its members use a "
                    "partition assignor this worker does not have (Kafka's 'range'). Are "
                    "Faust workers of this app still running? Stop them before starting "
                    f"fluvial's ({err.str()})"))
            elif err.code() != KafkaError._PARTITION_EOF:
                self._add_error(TransportError(f"Kafka consumer error: {err.name()}: {err.str()}"))
        if not batch:
            return
        if gen < self._assign_gen:
            batch = []
        elif self._seek_gens:
            stale = {tp for tp, g in self._seek_gens.items() if g > gen}
            if stale:
                batch = [m for m in batch if TP(m.topic, m.partition) not in stale]
        if batch:
            self._buffer.append(batch)
            self._ready.set()
        else:
            self._release(1)

    def _add_error(self, exc: BaseException) -> None:
        self._errors.append(exc)
        self._ready.set()

    def _set_dead(self, exc: BaseException) -> None:
        self._dead = exc
        self._ready.set()

    def _set_closed(self) -> None:
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    async def _handle_assign(self, tps: set[TP]) -> None:
        self._assigned |= tps
        if self._on_assign_cb is not None:
            await self._on_assign_cb(tps)

    async def _handle_revoke(self, tps: set[TP], *, lost: bool = False) -> None:
        # Buffered messages of revoked partitions will be fetched by their new owner.
        self._buffer.drop(tps)
        self._buffer.paused -= tps
        self._assigned -= tps
        if lost:
            logger.info("Kafka consumer: the group dropped this member; its partitions "
                        "are lost: %s", ", ".join(f"{t}[{p}]" for t, p in sorted(tps)))
        callback = self._on_lost_cb if lost and self._on_lost_cb else self._on_revoke_cb
        if callback is not None:
            await callback(tps)


def _resolve(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
