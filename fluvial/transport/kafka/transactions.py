"""The transactional Kafka producer (exactly-once, KIP-447): one per worker.

librdkafka's transactional calls block (a commit waits for the coordinator,
``init_transactions`` may take seconds) and must not run concurrently with
each other, so they run one at a time on a single-thread executor, never on
the event loop. ``produce()`` stays on the loop as in :class:`KafkaProducer`.

Between ``commit_transaction`` and the next ``begin_transaction`` librdkafka
refuses ``produce()``; sends made in that window (a timer, a web view) are
held here and replayed into the next transaction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from ...exceptions import (
    ProducerError,
    ProducerFenced,
    TransactionAborted,
    TransactionsUnavailable,
)
from ...types import TP, Headers, RecordMetadata
from ._config import Throttle
from .producer import KafkaProducer

__all__ = ["FENCED_CODES", "TransactionalKafkaProducer"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors that mean another producer or another group generation owns the work now.
FENCED_CODES = frozenset({
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.FENCED_INSTANCE_ID,
})

#: How long one transactional call may take before it is retried or reported.
CALL_TIMEOUT_S = 30.0
#: Attempts of a call that fails with a retriable error (e.g. a timed-out commit).
RETRIES = 5

# A send made while no transaction is open: (topic, key, value, partition, ts, headers, future)
_Held = tuple[str, "bytes | None", "bytes | None", "int | None", "float | None",
              "Headers | None", "asyncio.Future[RecordMetadata] | None"]


class TransactionalKafkaProducer(KafkaProducer):
    """A :class:`~fluvial.types.TransactionalProducerT` on librdkafka."""

    def __init__(self, config: dict[str, Any], transactional_id: str) -> None:
        cfg = dict(config)
        cfg["transactional.id"] = transactional_id
        super().__init__(cfg)
        self.transactional_id = transactional_id
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="fluvial-kafka-txn")
        self._open = False
        self._held: list[_Held] = []
        self._fatal_code: int | None = None
        self._fatal_send = False
        self._dropped = Throttle()

    # -- sending ---------------------------------------------------------------
    def send(self, topic: str, key: bytes | None, value: bytes | None, *,
             partition: int | None = None, timestamp: float | None = None,
             headers: Headers | None = None) -> asyncio.Future[RecordMetadata]:
        if self._loop is None:
            raise ProducerError("Producer not started: await producer.start() first")
        if self._open:
            try:
                return super().send(topic, key, value, partition=partition,
                                    timestamp=timestamp, headers=headers)
            except ProducerError as exc:
                if not self._doomed(exc):
                    raise
                self._log_dropped(topic, exc)
                fut: asyncio.Future[RecordMetadata] = self._loop.create_future()
                fut.set_exception(exc)
                fut.exception()  # the commit reports it; nobody need retrieve it
                return fut
        fut = self._loop.create_future()
        self._held.append((topic, key, value, partition, timestamp, headers, fut))
        return fut

    def send_soon(self, topic: str, key: bytes | None, value: bytes | None, *,
                  partition: int | None = None, timestamp: float | None = None,
                  headers: Headers | None = None) -> None:
        if not self._open:
            self._held.append((topic, key, value, partition, timestamp, headers, None))
            return
        try:
            super().send_soon(topic, key, value, partition=partition, timestamp=timestamp,
                              headers=headers)
        except ProducerError as exc:
            if not self._doomed(exc):
                raise
            self._log_dropped(topic, exc)

    def _log_dropped(self, topic: str, exc: ProducerError) -> None:
        held = self._dropped.due("dropped")
        if held is not None:
            logger.warning("Exactly-once: a message to %r is dropped with the transaction, "
                           "which cannot commit (%s)%s; its events are processed again",
                           topic, exc, f" ({held} more dropped since)" if held else "")

    def _doomed(self, exc: ProducerError) -> bool:
        """A send failed because the producer failed fatally (fenced), or because the
        transaction is in an abortable error state (``_STATE``: its messages timed
        out, a zombie woken): the transaction cannot commit, and the commit says so
        (fenced, or :class:`TransactionAborted`); the send is dropped with it."""
        cause = exc.__cause__
        err = _error(cause) if isinstance(cause, KafkaException) else None
        fatal = self._fatal is not None or (err is not None and err.code() == KafkaError._FATAL)
        if fatal:
            self._fatal_send = True
        return fatal or (err is not None and err.code() == KafkaError._STATE)

    def _replay_held(self) -> None:
        held, self._held = self._held, []
        for topic, key, value, partition, timestamp, headers, fut in held:
            if fut is None:
                super().send_soon(topic, key, value, partition=partition, timestamp=timestamp,
                                  headers=headers)
                continue
            inner = super().send(topic, key, value, partition=partition, timestamp=timestamp,
                                 headers=headers)
            inner.add_done_callback(_chain_to(fut))

    # -- transactions ------------------------------------------------------------
    async def init_transactions(self) -> None:
        try:
            await self._call(self._producer.init_transactions, CALL_TIMEOUT_S)
        except KafkaException as exc:
            err = _error(exc)
            raise TransactionsUnavailable(
                f"processing_guarantee='exactly_once' needs Kafka transactions, but "
                f"init_transactions for transactional.id {self.transactional_id!r} failed: "
                f"{err.name() if err else ''} {err.str() if err else exc}. Check that the "
                "broker can create its transaction state log (__transaction_state): with fewer "
                "brokers than transaction.state.log.replication.factor (default 3), set it and "
                "transaction.state.log.min.isr to at most the number of brokers; check that "
                "ACLs allow Write on the TransactionalId and IdempotentWrite on the cluster. "
                "Or use processing_guarantee='at_least_once'."
            ) from exc

    async def begin_transaction(self) -> None:
        await self._checked("begin the transaction", self._producer.begin_transaction)
        self._open = True
        if self._held:
            self._replay_held()

    async def send_offsets_to_transaction(self, offsets: Mapping[TP, int],
                                          group_metadata: Any) -> None:
        parts = [TopicPartition(t, p, off) for (t, p), off in offsets.items()]
        await self._checked("send offsets to the transaction",
                            self._producer.send_offsets_to_transaction, parts, group_metadata,
                            CALL_TIMEOUT_S)

    def prepare_commit(self) -> None:
        # From here until begin_transaction, sends are held (librdkafka would refuse
        # them during the commit, and they belong to the next transaction).
        self._open = False

    async def commit_transaction(self) -> None:
        self._open = False
        try:
            await self.flush()
        except ProducerError as exc:
            # The commit below reports the transaction's state (fenced, or abortable).
            logger.warning("Exactly-once: messages of the transaction of %r were not "
                           "delivered: %s", self.transactional_id, exc)
        await self._checked("commit the transaction", self._producer.commit_transaction,
                            CALL_TIMEOUT_S)

    async def abort_transaction(self) -> None:
        """Abort the open transaction; a fenced producer can only be dropped."""
        self._open = False
        self._held.clear()
        if self._fatal is not None:
            self._producer.purge()
            return
        try:
            await self._call(self._producer.abort_transaction, CALL_TIMEOUT_S)
        except KafkaException as exc:
            logger.warning("Aborting the transaction of %r failed: %s", self.transactional_id,
                           exc)
            self._producer.purge()

    async def renew(self, transactional_id: str) -> None:
        """Drop the (fenced) librdkafka producer; start a fresh one with ``transactional_id``."""
        self._open = False
        self._held.clear()
        loop = asyncio.get_running_loop()
        thread = self._thread
        if thread is not None:
            self._stopping.set()
            await loop.run_in_executor(None, thread.join)
        self._producer.purge()
        with self._waiters_lock:
            waiters, self._flush_waiters = self._flush_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        cfg = dict(self._config)
        cfg["transactional.id"] = transactional_id
        self.transactional_id = transactional_id
        self._producer = Producer(cfg)
        self._reports = []
        self._failures = []
        self._fatal = None
        self._fatal_code = None
        self._fatal_send = False
        self._stopping = threading.Event()
        self._thread = None
        self._stopped = False
        await self.start()

    async def stop(self) -> None:
        self._held.clear()
        if self._fatal is not None and not self._stopped and self._thread is not None:
            self._producer.purge()
            self._failures.clear()
            self._fatal = None  # reported already; let stop() release the producer
        try:
            await super().stop()
        finally:
            self._executor.shutdown(wait=False)

    # -- helpers -------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def _checked(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        """Run one transactional call: retry retriable errors, name fencing as such."""
        for attempt in range(1, RETRIES + 1):
            try:
                await self._call(fn, *args)
                return
            except KafkaException as exc:
                err = _error(exc)
                if err is None:
                    raise ProducerError(f"Could not {what}: {exc}") from exc
                if (err.code() in FENCED_CODES or self._fatal_code in FENCED_CODES
                        or (err.fatal() and self._fatal_send)):
                    raise ProducerFenced(
                        f"Could not {what} (transactional.id {self.transactional_id!r}): "
                        f"{err.name()}: {err.str()}"
                    ) from exc
                if err.txn_requires_abort():
                    raise TransactionAborted(
                        f"Could not {what} (transactional.id {self.transactional_id!r}): "
                        f"{err.name()}: {err.str()} — the transaction is aborted"
                    ) from exc
                if err.retriable() and attempt < RETRIES:
                    logger.warning("Could not %s (attempt %d): %s; retrying", what, attempt,
                                   err.str())
                    continue
                raise ProducerError(
                    f"Could not {what} (transactional.id {self.transactional_id!r}): "
                    f"{err.name()}: {err.str()}"
                ) from exc

    def _on_error(self, user_cb: Any, err: KafkaError) -> None:
        if err.fatal():
            self._fatal_code = err.code()
        super()._on_error(user_cb, err)


def _error(exc: KafkaException) -> KafkaError | None:
    err = exc.args[0] if exc.args else None
    return err if isinstance(err, KafkaError) else None


def _chain_to(outer: asyncio.Future[RecordMetadata]
              ) -> Callable[[asyncio.Future[RecordMetadata]], None]:
    def done(inner: asyncio.Future[RecordMetadata]) -> None:
        if outer.done():
            return
        if inner.cancelled():
            outer.cancel()
        elif inner.exception() is not None:
            outer.set_exception(inner.exception())  # type: ignore[arg-type]
        else:
            outer.set_result(inner.result())
    return done
