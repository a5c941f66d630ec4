"""The Kafka producer: ``produce()`` from the event loop, deliveries resolved by a poll thread.

``send``/``send_soon`` call librdkafka's ``produce()`` directly on the loop (it
only enqueues). One daemon thread calls ``poll()``; the delivery reports it
serves are collected and handed to the loop in one ``call_soon_threadsafe``
per poll round, where futures are resolved and failures recorded for the next
``flush()``. With nothing in flight the thread waits on an event a send, a
flush or a delivery wait sets, not in ``poll()`` (which nothing can
interrupt): a flush then answers at once instead of at the end of the
thread's current ``poll()``.

Delivery by sequence: ``mark()`` closes the span of messages enqueued since the
previous mark and returns their sequence number; ``wait_delivered(seq)`` waits
until every span up to it is reported (delivered or failed), however many
messages were enqueued after it. A checkpoint waits for what it must, never for
an empty queue.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka import Message as RawMessage

from ...exceptions import ProducerError
from ...types import Headers, RecordMetadata
from ._config import Throttle, describe_error

__all__ = ["PRODUCER_DEFAULTS", "KafkaProducer"]

logger = logging.getLogger(__name__)

PRODUCER_DEFAULTS: dict[str, Any] = {
    # Keyed messages land where Java clients (and Faust) put them.
    "partitioner": "murmur2_random",
    # Idempotence keeps per-partition order and avoids duplicates when
    # librdkafka retries (changelogs rely on "last write wins" order), costs
    # nothing measurable here, and is required by transactions anyway.
    # Set enable.idempotence=false for brokers whose ACLs deny IdempotentWrite.
    "enable.idempotence": True,
    "linger.ms": 5,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
}

#: How long ``send`` may block the loop waiting for room in a full producer queue.
QUEUE_FULL_TIMEOUT_S = 30.0
_POLL_INTERVAL_S = 0.05
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})

# A delivery report as collected on the poll thread: (future or None, error, message).
_Report = tuple["asyncio.Future[RecordMetadata] | None", "KafkaError | None", RawMessage]


def _delivery_error(err: KafkaError, msg: RawMessage) -> ProducerError:
    return ProducerError(
        f"Delivery to {msg.topic()}[{msg.partition()}] failed: {err.name()}: {err.str()}"
    )


def _metadata(msg: RawMessage) -> RecordMetadata:
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    # A delivered message always has them; None only on consumer-side errors.
    assert topic is not None and partition is not None and offset is not None
    return RecordMetadata(topic, partition, offset, msg.timestamp()[1] / 1000.0)


class _Span:
    """The messages enqueued between two ``mark()`` calls.

    ``sent`` is counted on the loop, ``reported`` (delivered or failed) on the
    poll thread: each counter has one writer.
    """

    __slots__ = ("end", "on_delivery", "producer", "reported", "sent")

    def __init__(self, producer: KafkaProducer) -> None:
        self.producer = producer
        self.sent = 0
        self.reported = 0
        #: The sequence number after its last message, once marked.
        self.end = 0
        self.on_delivery = self._on_delivery  # bound once, not per message

    def _on_delivery(self, err: KafkaError | None, msg: RawMessage) -> None:
        # On the poll thread: a send_soon() message's report.
        self.reported += 1
        if err is not None:
            self.producer._reports.append((None, err, msg))


class KafkaProducer:
    """A :class:`~fluvial.types.ProducerT` on librdkafka."""

    def __init__(self, config: dict[str, Any]) -> None:
        cfg = dict(PRODUCER_DEFAULTS)
        cfg.update(config)
        cfg["on_delivery"] = self._on_delivery
        user_error_cb = cfg.get("error_cb")
        cfg["error_cb"] = partial(self._on_error, user_error_cb)
        self._config = cfg
        self._producer = Producer(cfg)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Filled on the poll thread only; swapped out once per round.
        self._reports: list[_Report] = []
        self._failures: list[ProducerError] = []
        self._fatal: ProducerError | None = None
        self._poll_errors = Throttle()
        self._flush_waiters: list[asyncio.Future[None]] = []
        #: The span messages are enqueued in now, and the marked ones not all reported.
        self._span = _Span(self)
        self._marked: deque[_Span] = deque()
        #: Messages enqueued up to the last mark, and how many of them are all reported.
        self._marked_seq = 0
        self._delivered_seq = 0
        #: ``_delivered_seq`` as the loop knows it: the futures up to it are resolved.
        self._known_delivered = 0
        self._seq_waiters: list[tuple[int, asyncio.Future[None]]] = []
        #: Rounds of delivery reports handed to the loop (poll thread) and handled
        #: there (loop): equal, nothing is on its way (see :meth:`_settled`).
        self._rounds_posted = 0
        self._rounds_handled = 0
        self._waiters_lock = threading.Lock()
        self._round_done = threading.Event()
        #: Set by a send or a flush to wake the poll thread waiting with nothing in flight.
        self._wake = threading.Event()
        self._idle = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def client(self) -> Producer:
        """The underlying confluent-kafka producer (for transactions)."""
        return self._producer

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._poll_forever, name="fluvial-kafka-producer-poll", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Flush what is pending and release the producer (idempotent)."""
        if self._stopped or self._thread is None:
            self._stopped = True
            return
        try:
            await self.flush()
        finally:
            self._stopped = True
            self._stopping.set()
            self._wake.set()
            thread = self._thread
            await asyncio.get_running_loop().run_in_executor(None, thread.join)

    # -- sending ---------------------------------------------------------------
    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Enqueue a message; the future resolves on the event loop once delivered."""
        loop = self._loop
        if loop is None:
            raise ProducerError("Producer not started: await producer.start() first")
        fut: asyncio.Future[RecordMetadata] = loop.create_future()
        span = self._span

        def delivered(err: KafkaError | None, msg: RawMessage) -> None:
            # On the poll thread, which swaps self._reports between rounds.
            span.reported += 1
            self._reports.append((fut, err, msg))

        self._produce(topic, key, value, partition, timestamp, headers, delivered)
        span.sent += 1
        if self._idle:
            self._wake.set()
        return fut

    def send_soon(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Enqueue without a future; a delivery failure is raised by the next ``flush``."""
        if self._fatal is not None:
            raise self._fatal
        span = self._span
        try:
            # All positional (topic, value, key, partition, callback, on_delivery,
            # timestamp, headers): confluent-kafka parses keywords at ~0.1 us each, a
            # cost per event on a repartition hop. No callback: the producer's own.
            self._producer.produce(
                topic,
                value,
                key,
                -1 if partition is None else partition,
                span.on_delivery,  # callback= (the same as on_delivery=)
                None,
                0 if timestamp is None else int(timestamp * 1000),
                headers,  # type: ignore[arg-type]  # list is invariant; ours is narrower
            )
        except BufferError:
            self._produce(topic, key, value, partition, timestamp, headers, span.on_delivery)
        except KafkaException as exc:
            raise ProducerError(f"Cannot send to {topic!r}: {exc}") from exc
        span.sent += 1
        if self._idle:
            self._wake.set()

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Headers | None,
        on_delivery: Any,
    ) -> None:
        if self._fatal is not None:
            raise self._fatal
        kwargs: dict[str, Any] = {
            "timestamp": 0 if timestamp is None else int(timestamp * 1000),
            "headers": headers,
        }
        if on_delivery is not None:
            kwargs["on_delivery"] = on_delivery
        part = -1 if partition is None else partition
        deadline = time.monotonic() + QUEUE_FULL_TIMEOUT_S
        while True:
            try:
                self._producer.produce(topic, value, key, part, **kwargs)
                return
            except BufferError:
                # The local queue is full: block the loop (this is back-pressure)
                # until the poll thread has drained a round, but not forever.
                if time.monotonic() > deadline:
                    raise ProducerError(
                        f"Producer queue still full after {QUEUE_FULL_TIMEOUT_S:.0f}s "
                        f"while sending to {topic!r}: is the broker reachable?"
                    ) from None
                self._round_done.clear()
                self._round_done.wait(_POLL_INTERVAL_S)
            except KafkaException as exc:
                raise ProducerError(f"Cannot send to {topic!r}: {exc}") from exc

    async def flush(self) -> None:
        """Wait until every enqueued message is delivered; raise the failures since last flush."""
        loop = asyncio.get_running_loop()
        if self._thread is not None and not self._stopped and not self._settled():
            fut: asyncio.Future[None] = loop.create_future()
            with self._waiters_lock:
                self._flush_waiters.append(fut)
            self._wake.set()
            await fut
        self._raise_failures()

    def mark(self) -> int:
        """The sequence number of the last message enqueued (how many were, in all);
        ``wait_delivered`` waits for the messages up to it."""
        span = self._span
        if span.sent:
            self._span = _Span(self)
            self._marked_seq += span.sent
            span.end = self._marked_seq
            with self._waiters_lock:
                self._marked.append(span)
        return self._marked_seq

    async def wait_delivered(self, seq: int) -> None:
        """Wait until every message up to sequence ``seq`` (see :meth:`mark`) is
        delivered; raise the failures since the last flush like :meth:`flush`.

        Messages enqueued after the mark are not waited for.
        """
        if seq > self._known_delivered and self._thread is not None and not self._stopped:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            with self._waiters_lock:
                self._seq_waiters.append((seq, fut))
            self._wake.set()
            await fut
        self._raise_failures()

    def _advance_delivered(self) -> int:
        """On the poll thread, under ``_waiters_lock``: the sequence number up to
        which every message is reported."""
        marked = self._marked
        while marked and marked[0].reported >= marked[0].sent:
            self._delivered_seq = marked.popleft().end
        return self._delivered_seq

    def _raise_failures(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        failures, self._failures = self._failures, []
        if failures:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise ProducerError(f"{failures[0]}{more}") from failures[0]

    def _settled(self) -> bool:
        """Whether every message sent was delivered and its report handled on the loop.

        Then ``flush`` has nothing to wait for, and not waiting for the poll
        thread's next round saves a checkpoint up to a poll interval. librdkafka
        counts a message in ``len()`` until its delivery callback has returned
        (the callback appends to ``_reports``), and a round is counted posted
        before its reports leave ``_reports``: a failure is never missed.
        """
        return (len(self._producer) == 0 and not self._reports
                and self._rounds_posted == self._rounds_handled)

    # -- poll thread -----------------------------------------------------------
    def _on_delivery(self, err: KafkaError | None, msg: RawMessage) -> None:
        # Delivery report of a send_soon() message (send() passes its own callback).
        if err is not None:
            self._reports.append((None, err, msg))

    def _on_error(self, user_cb: Any, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = ProducerError(
                f"The producer failed fatally and must be recreated: {err.name()}: {err.str()}"
            )
            logger.error("%s", self._fatal)
        elif user_cb is not None:
            user_cb(err)

    def _poll_forever(self) -> None:
        producer = self._producer
        loop = self._loop
        assert loop is not None
        wake = self._wake
        while not self._stopping.is_set():
            timeout = _POLL_INTERVAL_S
            if len(producer) == 0:
                # Nothing in flight, so no report to wait for: a flush waiting now
                # would otherwise wait out a whole poll(). Errors and logs are still
                # served every interval. The flag first, then the check: a send in
                # between either is seen here or sees the flag and wakes us.
                self._idle = True
                if len(producer) == 0 and not self._flush_waiters and not self._seq_waiters:
                    wake.wait(_POLL_INTERVAL_S)
                self._idle = False
                wake.clear()
                timeout = 0
            try:
                producer.poll(timeout)
            except KafkaException as exc:
                # A fatal error (e.g. a fenced transactional producer) is raised by
                # poll(), every round: error_cb recorded it and flush() reports it;
                # said here once per interval.
                held = self._poll_errors.due("poll")
                if held is not None:
                    logger.warning("Kafka producer: poll failed: %s%s", describe_error(exc),
                                   f" ({held} times since)" if held else "")
            reports = self._reports
            if reports:
                # Counted before the swap: flush() sees the reports or the round.
                self._rounds_posted += 1
                self._reports = []
            waiters: list[asyncio.Future[None]] = []
            if self._flush_waiters and len(producer) == 0:
                with self._waiters_lock:
                    waiters, self._flush_waiters = self._flush_waiters, []
            if self._seq_waiters:
                # After the reports of this round were taken: they are handed to
                # the loop before (with) the waiters they satisfy.
                with self._waiters_lock:
                    delivered = self._advance_delivered()
                    ready = [w for w in self._seq_waiters if w[0] <= delivered]
                    if ready:
                        self._seq_waiters = [w for w in self._seq_waiters if w[0] > delivered]
                        waiters.extend(fut for _, fut in ready)
            else:
                delivered = -1
            self._round_done.set()
            if reports or waiters:
                try:
                    loop.call_soon_threadsafe(self._deliver, reports, waiters, delivered)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    return

    def _deliver(self, reports: list[_Report], waiters: list[asyncio.Future[None]],
                 delivered: int = -1) -> None:
        # On the loop, once per poll round.
        if reports:
            self._rounds_handled += 1
        for fut, err, msg in reports:
            if err is None:
                if fut is not None and not fut.done():
                    fut.set_result(_metadata(msg))
                continue
            if err.code() in _PURGED:
                # Dropped on purpose with an aborted transaction: nobody waits for it.
                if fut is not None:
                    fut.cancel()
                continue
            exc = _delivery_error(err, msg)
            self._failures.append(exc)
            if fut is not None and not fut.done():
                fut.set_exception(exc)
        if delivered > self._known_delivered:
            self._known_delivered = delivered
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
