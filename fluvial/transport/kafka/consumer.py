"""The Kafka consumer: one thread calls librdkafka's ``consume()``, the loop reads batches.

Threading model (DESIGN §3):

* The *consumer thread* owns every call that changes what librdkafka fetches
  (``subscribe``, ``assign``, ``seek``, ``pause``, ``resume``, ``close``): the
  loop enqueues them as commands, run between two ``consume()`` calls, so their
  order relative to fetched batches is known (see "generations" below).
* Fetched batches are converted to :class:`~fluvial.types.Message` on the
  thread and handed to the loop whole with ``call_soon_threadsafe``. At most
  ``max_pending_batches`` handed-off batches may be unread; then the thread waits.
* Rebalance callbacks run inside ``consume()`` on the thread; they block on the
  loop (``run_coroutine_threadsafe(...).result()``) so the application's
  revoke/assign handling completes before librdkafka proceeds.
* Blocking requests (commit, committed, watermarks) run on a one-thread
  executor, so they work while the consumer thread waits in a rebalance callback.

Generations: ``assign()`` and ``seek()`` bump a counter; each batch carries the
counter value of the last command the thread ran before fetching it. A batch
fetched before an ``assign`` is dropped whole, and messages fetched before a
``seek`` of their partition are dropped, because librdkafka re-fetches from the
new position.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as RawMessage

from ...exceptions import CommitError, TransportError
from ...types import TP, Message, RebalanceCallback
from ._config import describe_error

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
    # Throughput: large fetches, a deep prefetch queue, but a short broker wait
    # so a trickle of messages is not delayed.
    "fetch.wait.max.ms": 100,
    "max.partition.fetch.bytes": 4 * 1024 * 1024,
    "queued.min.messages": 200_000,
    "queued.max.messages.kbytes": 131_072,
}

#: How long the thread blocks in one ``consume()`` when nothing is queued; it
#: bounds the delay of commands (assign, seek, stop) issued while idle.
_BLOCK_S = 0.1
# librdkafka reports these as messages; they are not failures of the consumer.
_UNKNOWN_TOPIC_CODES = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
    }
)


def _convert(raws: list[RawMessage]) -> tuple[list[Message], list[KafkaError]]:
    """confluent-kafka messages -> fluvial Messages; the per-event hot loop."""
    out: list[Message] = []
    errors: list[KafkaError] = []
    append = out.append
    new = Message
    for m in raws:
        err = m.error()
        if err is not None:
            errors.append(err)
            continue
        ts = m.timestamp()[1]
        append(
            new(
                m.topic(),  # type: ignore[arg-type]
                m.partition(),  # type: ignore[arg-type]
                m.offset(),  # type: ignore[arg-type]
                m.key(),
                m.value(),
                ts / 1000.0 if ts >= 0 else 0.0,
                m.headers(),  # type: ignore[arg-type]
            )
        )
    return out, errors


def _tps(tps: Iterable[TP], offset: int | None = None) -> list[TopicPartition]:
    if offset is None:
        return [TopicPartition(t, p) for t, p in tps]
    return [TopicPartition(t, p, offset) for t, p in tps]


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
    ) -> None:
        cfg = dict(CONSUMER_DEFAULTS)
        cfg.update(config)
        # librdkafka wants a group.id even for manual assignment; such a
        # consumer never joins, commits or reads committed offsets.
        cfg["group.id"] = group_id if group_id is not None else f"fluvial-assign-{uuid.uuid4()}"
        cfg["error_cb"] = self._on_client_error
        self.group_id = group_id
        self._consumer = Consumer(cfg)
        self._batch_size = batch_size
        self._max_pending = max_pending_batches
        self._timeout_s = request_timeout_s
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="fluvial-kafka-consumer-req")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_assign_cb: RebalanceCallback | None = None
        self._on_revoke_cb: RebalanceCallback | None = None
        # Loop side.
        self._batches: deque[list[Message]] = deque()
        self._pos = 0  # messages of _batches[0] already returned
        self._held: dict[TP, list[Message]] = {}  # buffered messages of paused partitions
        self._paused: set[TP] = set()
        self._assigned: set[TP] = set()
        self._errors: deque[BaseException] = deque()
        self._dead: BaseException | None = None
        self._ready = asyncio.Event()
        self._gen = 0
        self._assign_gen = 0
        self._seek_gens: dict[TP, int] = {}
        self._closed: asyncio.Future[None] | None = None
        self._stop_called = False
        # Shared with the consumer thread.
        self._commands: deque[tuple[int, Callable[[], None]]] = deque()
        self._cond = threading.Condition()
        self._pending = 0  # handed-off batches not yet fully read
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def client(self) -> Consumer:
        """The underlying confluent-kafka consumer (e.g. for ``consumer_group_metadata``)."""
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
        if self._closed is None:  # never started: nothing fetched, no callbacks to serve
            await asyncio.get_running_loop().run_in_executor(self._executor, self._consumer.close)
        else:
            await asyncio.shield(self._closed)
        self._executor.shutdown(wait=False)

    # -- group membership and assignment ----------------------------------------
    def subscribe(
        self,
        topics: Iterable[str],
        *,
        on_assign: RebalanceCallback,
        on_revoke: RebalanceCallback,
    ) -> None:
        """Join the consumer group for ``topics`` (may be called again to change them)."""
        if self.group_id is None:
            raise TransportError("A consumer created with group_id=None cannot subscribe")
        self._on_assign_cb = on_assign
        self._on_revoke_cb = on_revoke
        self._command(
            partial(
                self._consumer.subscribe,
                sorted(set(topics)),
                on_assign=self._rebalance_assign,
                on_revoke=self._rebalance_revoke,
            )
        )

    def assign(self, offsets: Mapping[TP, int]) -> None:
        """Read exactly these partitions from these offsets (no group)."""
        self._gen += 1
        self._assign_gen = self._gen
        self._drop_all()
        self._paused.clear()
        self._assigned = set(offsets)
        parts = [TopicPartition(t, p, off) for (t, p), off in offsets.items()]
        self._command(partial(self._consumer.assign, parts))

    def assignment(self) -> set[TP]:
        return set(self._assigned)

    def seek(self, tp: TP, offset: int) -> None:
        self._gen += 1
        self._seek_gens[tp] = self._gen
        self._drop({tp})
        self._command(partial(self._consumer.seek, TopicPartition(tp[0], tp[1], offset)))

    def pause(self, tps: Iterable[TP]) -> None:
        new = set(tps) - self._paused
        if new:
            self._paused |= new
            self._command(partial(self._consumer.pause, _tps(new)))

    def resume(self, tps: Iterable[TP]) -> None:
        resumed = self._paused & set(tps)
        if not resumed:
            return
        self._paused -= resumed
        self._command(partial(self._consumer.resume, _tps(resumed)))
        held = [m for tp in resumed for m in self._held.pop(tp, ())]
        if held:
            held.sort(key=lambda m: m.offset)  # keeps per-partition order
            self._push_front(held)

    def _command(self, fn: Callable[[], None]) -> None:
        with self._cond:
            self._commands.append((self._gen, fn))
            self._cond.notify_all()

    # -- reading ----------------------------------------------------------------
    async def getmany(self, max_records: int, timeout: float) -> list[Message]:
        """Return up to ``max_records`` messages, waiting at most ``timeout`` seconds."""
        self._raise_pending()
        if not self._batches and timeout > 0:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self._raise_pending()
        return self._take(max_records)

    def _raise_pending(self) -> None:
        if self._errors:
            raise self._errors.popleft()
        if self._dead is not None:
            raise TransportError(f"The Kafka consumer thread died: {self._dead}") from self._dead

    def _take(self, max_records: int) -> list[Message]:
        batches = self._batches
        released = 0
        out: list[Message] = []
        while batches and len(out) < max_records:
            batch = batches[0]
            pos = self._pos
            end = pos + max_records - len(out)
            chunk = batch if pos == 0 and end >= len(batch) else batch[pos:end]
            if end >= len(batch):
                batches.popleft()
                self._pos = 0
                released += 1
            else:
                self._pos = end
            if self._paused:
                chunk = self._hold_paused(chunk)
            if out:
                out.extend(chunk)
            else:
                out = chunk
        if released:
            self._release(released)
        return out

    def _hold_paused(self, chunk: list[Message]) -> list[Message]:
        paused = self._paused
        keep: list[Message] = []
        for m in chunk:
            tp = TP(m.topic, m.partition)
            if tp in paused:
                self._held.setdefault(tp, []).append(m)
            else:
                keep.append(m)
        return keep

    def _release(self, n: int) -> None:
        with self._cond:
            self._pending -= n
            self._cond.notify_all()

    def _push_front(self, batch: list[Message]) -> None:
        if self._pos:
            self._batches[0] = self._batches[0][self._pos :]
            self._pos = 0
        self._batches.appendleft(batch)
        with self._cond:
            self._pending += 1
        self._ready.set()

    def _drop(self, tps: set[TP]) -> None:
        """Forget buffered messages of ``tps`` (revoked, or re-positioned by seek)."""
        for tp in tps:
            self._held.pop(tp, None)
        if not self._batches:
            return
        if self._pos:
            self._batches[0] = self._batches[0][self._pos :]
            self._pos = 0
        kept: deque[list[Message]] = deque()
        for batch in self._batches:
            rest = [m for m in batch if TP(m.topic, m.partition) not in tps]
            if rest:
                kept.append(rest)
        released = len(self._batches) - len(kept)
        self._batches = kept
        if released:
            self._release(released)

    def _drop_all(self) -> None:
        self._held.clear()
        released = len(self._batches)
        self._batches.clear()
        self._pos = 0
        if released:
            self._release(released)

    # -- offsets ----------------------------------------------------------------
    async def commit(self, offsets: Mapping[TP, int]) -> None:
        """Commit ``offsets`` (the next offset to read) for the group."""
        if self.group_id is None:
            raise CommitError("A consumer created with group_id=None has no group to commit to")
        if not offsets:
            return
        parts = [TopicPartition(t, p, off) for (t, p), off in offsets.items()]
        consumer = self._consumer

        def commit_sync() -> list[TopicPartition]:
            return consumer.commit(offsets=parts, asynchronous=False)

        try:
            result = await self._off_loop(commit_sync)
        except (KafkaException, RuntimeError) as exc:
            raise CommitError(
                f"Committing offsets of group {self.group_id!r} failed: {describe_error(exc)}"
            ) from exc
        failed = [tp for tp in result if tp.error is not None]
        if failed:
            detail = ", ".join(f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in failed)
            raise CommitError(f"Committing offsets of group {self.group_id!r} failed: {detail}")

    async def committed(self, tps: Iterable[TP]) -> dict[TP, int | None]:
        tps = list(tps)
        if self.group_id is None or not tps:
            return dict.fromkeys(tps)
        try:
            result = await self._off_loop(
                partial(self._consumer.committed, _tps(tps), timeout=self._timeout_s)
            )
        except KafkaException as exc:
            raise TransportError(
                f"Reading committed offsets of group {self.group_id!r} failed: "
                f"{describe_error(exc)}"
            ) from exc
        return {TP(r.topic, r.partition): (r.offset if r.offset >= 0 else None) for r in result}

    async def end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The high-water mark (offset after the last message) of each partition."""
        marks = await self._watermarks(tps)
        return {tp: high for tp, (_, high) in marks.items()}

    async def beginning_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        marks = await self._watermarks(tps)
        return {tp: low for tp, (low, _) in marks.items()}

    async def _watermarks(self, tps: Iterable[TP]) -> dict[TP, tuple[int, int]]:
        consumer, timeout = self._consumer, self._timeout_s

        def query(tps: list[TP]) -> dict[TP, tuple[int, int]]:
            result: dict[TP, tuple[int, int]] = {}
            for tp in tps:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(tp[0], tp[1]), timeout=timeout, cached=False
                )
                result[TP(tp[0], tp[1])] = (low, high)
            return result

        try:
            return await self._off_loop(partial(query, list(tps)))
        except KafkaException as exc:
            raise TransportError(
                f"Reading watermark offsets failed: {describe_error(exc)}"
            ) from exc

    async def _off_loop(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # -- consumer thread ----------------------------------------------------------
    def _run(self) -> None:
        consumer = self._consumer
        loop = self._loop
        assert loop is not None
        cond, commands = self._cond, self._commands
        batch_size, max_pending = self._batch_size, self._max_pending
        gen = 0
        try:
            while True:
                with cond:
                    while not self._stopping and not commands and self._pending >= max_pending:
                        cond.wait()
                    if self._stopping:
                        break
                while commands:
                    gen, command = commands.popleft()
                    try:
                        command()
                    except KafkaException as exc:
                        self._post_error(TransportError(describe_error(exc)))
                if self._pending >= max_pending:
                    continue
                raws = consumer.consume(batch_size, 0)
                if not raws:
                    # consume(n, t) waits for n messages or t seconds: block for
                    # one, then take whatever else is already queued.
                    raws = consumer.consume(1, _BLOCK_S)
                    if not raws:
                        continue
                    raws += consumer.consume(batch_size - 1, 0)
                batch, errors = _convert(raws)
                if batch:
                    with cond:
                        self._pending += 1
                if batch or errors:
                    loop.call_soon_threadsafe(self._receive, batch, gen, errors)
        except BaseException as exc:
            logger.exception("Kafka consumer thread crashed")
            self._post(self._set_dead, exc)
        finally:
            try:
                consumer.close()  # leaves the group; serves the final revoke
            except Exception:
                logger.exception("Closing the Kafka consumer failed")
            self._post(self._set_closed)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        assert loop is not None
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed: nobody left to tell
            pass

    def _post_error(self, exc: BaseException) -> None:
        self._post(self._add_error, exc)

    # -- on the loop, called from the thread ------------------------------------------
    def _receive(self, batch: list[Message], gen: int, errors: list[KafkaError]) -> None:
        for err in errors:
            if err.code() in _UNKNOWN_TOPIC_CODES:
                # Also seen briefly right after topic creation; not fatal.
                logger.warning("Kafka consumer: %s", err.str())
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
            self._batches.append(batch)
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

    async def _handle_revoke(self, tps: set[TP]) -> None:
        # Buffered messages of revoked partitions will be fetched by their new owner.
        self._drop(tps)
        self._assigned -= tps
        self._paused -= tps
        if self._on_revoke_cb is not None:
            await self._on_revoke_cb(tps)

    # -- on the thread, inside consume() ----------------------------------------------
    def _rebalance_assign(self, _consumer: Consumer, parts: list[TopicPartition]) -> None:
        self._on_loop(self._handle_assign({TP(p.topic, p.partition) for p in parts}))

    def _rebalance_revoke(self, _consumer: Consumer, parts: list[TopicPartition]) -> None:
        self._on_loop(self._handle_revoke({TP(p.topic, p.partition) for p in parts}))

    def _on_loop(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` on the loop and wait for it: librdkafka proceeds only afterwards."""
        loop = self._loop
        assert loop is not None
        if loop.is_closed():
            coro.close()
            return
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        while True:
            try:
                fut.result(timeout=1.0)
                return
            except concurrent.futures.TimeoutError:
                if loop.is_closed():
                    return
            except BaseException as exc:
                logger.error("Rebalance callback failed: %r", exc)
                self._post_error(exc)
                return

    def _on_client_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._post_error(
                TransportError(f"The Kafka consumer failed fatally: {err.name()}: {err.str()}")
            )
        else:
            logger.warning("Kafka consumer: %s", err.str())
