"""Exactly-once (``processing_guarantee='exactly_once'``): the worker's transactional producer.

One transactional producer per worker (KIP-447). Its ``transactional.id`` is
stable per worker — the app id and ``consumer_group_instance_id`` when set,
else the app id and a token of the host and data directory — so a restarted
worker's ``init_transactions`` fences its predecessor and aborts its open
transaction at once instead of leaving ``read_committed`` readers stuck.
Zombies (a worker the group moved on without) are fenced by the group
generation sent with the offsets.

A fenced worker does not crash: the conductor discards its uncommitted state
and re-joins the group (see :meth:`Conductor.rejoin
<fluvial.runtime.conductor.Conductor>`); :class:`Transactions` paces that, so
two fencings in a row back off instead of looping.
"""

from __future__ import annotations

import hashlib
import logging
import socket
from typing import TYPE_CHECKING, Any, cast

from ..exceptions import FluvialError
from ..settings import Settings
from ..transport.tuning import producer_settings
from ..types import TransactionalProducerT
from .pacing import RejoinPacing

if TYPE_CHECKING:
    from ..app import App

__all__ = ["Transactions", "transactional_id"]

logger = logging.getLogger(__name__)

#: The shortest ``transaction.timeout.ms`` (seconds) of the worker's producer.
TRANSACTION_TIMEOUT_S = 10.0

def transactional_id(conf: Settings) -> str:
    """The worker's stable ``transactional.id``."""
    if conf.consumer_group_instance_id:
        return f"{conf.id}-{conf.consumer_group_instance_id}"
    where = f"{socket.gethostname()}:{conf.appdir.resolve()}"
    return f"{conf.id}-{hashlib.sha1(where.encode()).hexdigest()[:12]}"


class Transactions:
    """The worker's transactional producer and the pacing of re-joins after fencing."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.producer: TransactionalProducerT | None = None
        self._pacing = RejoinPacing()

    async def start(self) -> TransactionalProducerT:
        """Make the transactional producer, fence predecessors, open the first transaction."""
        conf = self.app.conf
        tid = transactional_id(conf)
        producer = self.app.transport.create_transactional_producer(tid, **_producer_config(conf))
        await producer.start()
        try:
            await producer.init_transactions()
            await producer.begin_transaction()
        except BaseException:
            await producer.stop()
            raise
        self.producer = producer
        logger.info("Exactly-once: transactional producer %r ready", tid)
        return producer

    @property
    def fenced(self) -> int:
        """Fencings so far (for tests and metrics)."""
        return self._pacing.count

    def backoff(self) -> float:
        """Seconds to wait before re-joining after this fencing (0 for a first one)."""
        return self._pacing.next_delay()

    async def renew(self, *, keep: bool = False) -> TransactionalProducerT:
        """Replace a fenced producer by a fresh one (same object for everyone holding it).

        After a fencing the new producer takes a new ``transactional.id``
        (suffixed by the fencing count): if a live worker shares this worker's
        identity (a misconfiguration), the two would otherwise fence each other
        in turn forever. ``keep``: the transaction was only aborted
        (:class:`~fluvial.exceptions.TransactionAborted`), so the producer goes
        on with a new transaction if it can.
        """
        producer = self.producer
        assert producer is not None
        await producer.abort_transaction()
        if keep:
            try:
                await producer.begin_transaction()
                return producer
            except FluvialError as exc:
                logger.warning("Exactly-once: the producer cannot go on after the abort (%s); "
                               "starting a new one", exc)
        tid = f"{transactional_id(self.app.conf)}-f{self.fenced}"
        await producer.renew(tid)
        await producer.init_transactions()
        await producer.begin_transaction()
        logger.warning("Exactly-once: new transactional producer %r", tid)
        return producer


def _producer_config(conf: Settings) -> dict[str, Any]:
    return cast("dict[str, Any]", {
        "client.id": conf.broker_client_id,
        **producer_settings(conf),
        "acks": "all",
        # A worker that dies mid-transaction leaves it open until its successor
        # starts with the same transactional.id, or until this timeout: meanwhile
        # read_committed readers of its partitions wait. Kafka Streams' choice (10 s),
        # or longer when a checkpoint interval is long.
        "transaction.timeout.ms": int(transaction_timeout(conf) * 1000),
    })


def transaction_timeout(conf: Settings) -> float:
    """Seconds the coordinator lets a transaction stay open before aborting it."""
    return max(TRANSACTION_TIMEOUT_S, 4 * conf.broker_commit_interval)
