"""What checkpoints and rebalances work with: the few parts of a worker they touch.

Not the app: the group consumer, the producer, the tables, the offset tracker
and how to fail; plus the state they share with the fetch loop (the
assignment, the partitions whose tables are being restored, the membership
generation, a re-join the fetch loop still owes). See ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..exceptions import ConsumerFailed, ProducerFenced
from ..types import TP, ConsumerT, ProducerT
from .offsets import OffsetTracker

if TYPE_CHECKING:
    from ..clock import Clock
    from ..sensors.base import SensorDelegate
    from ..tables.manager import TableManager

__all__ = ["WorkerContext"]


class WorkerContext:
    """The narrow view of a worker given to :mod:`.checkpoints` and :mod:`.rebalance`."""

    def __init__(self, *, producer: Callable[[], ProducerT], tables: TableManager,
                 sensors: SensorDelegate, clock: Callable[[], Clock],
                 on_fatal: Callable[[BaseException], None],
                 topics_declared: Callable[[], Awaitable[None]]) -> None:
        #: The group consumer (``None`` between two, while re-joining).
        self.consumer: ConsumerT | None = None
        #: Which fetched offsets are processed (replaced by a re-join).
        self.offsets = OffsetTracker()
        self.tables = tables
        self.sensors = sensors
        #: Partitions assigned to this worker (the leader topic's excepted).
        self.assignment: set[TP] = set()
        #: Partition numbers held back until their tables are restored.
        self.recovering: set[int] = set()
        #: Bumped by each re-join: work begun under an older generation is void.
        self.generation = 0
        #: A fencing or failed consumer the fetch loop is to re-join from.
        self.rejoin_reason: ProducerFenced | ConsumerFailed | None = None
        #: The error the worker stops on (the first one).
        self.error: BaseException | None = None
        #: The fetch loop is running (else a checkpoint runs wherever it is asked).
        self.fetching = False
        self._producer = producer
        self._clock = clock
        self._on_fatal = on_fatal
        self._topics_declared = topics_declared

    @property
    def producer(self) -> ProducerT:
        """The producer sends go through now (exactly-once: the transactional one)."""
        return self._producer()

    @property
    def clock(self) -> Clock:
        """The app's clock (a test driver may swap in a virtual one)."""
        return self._clock()

    def fail(self, error: BaseException) -> None:
        """Stop the worker loudly with ``error`` (the first error wins)."""
        if self.error is None:
            self.error = error
            self._on_fatal(error)

    def owe_rejoin(self, reason: ProducerFenced | ConsumerFailed) -> None:
        """Leave ``reason`` for the fetch loop to re-join from (the first one wins)."""
        if self.rejoin_reason is None:
            self.rejoin_reason = reason

    async def topics_declared(self) -> None:
        """Wait for topics being created in the background (their messages would
        hold up a delivery wait or a transaction's commit)."""
        await self._topics_declared()
