"""A broker-less test driver: an app on a private in-process broker and a virtual clock.

    async with TestDriver(app) as driver:
        await driver.send("orders", value=Order(...))
        await driver.settle()                 # everything sent so far is processed
        await driver.advance(60)              # timers and windows see a minute pass
        assert table["a"] == 1
"""

from __future__ import annotations

import asyncio
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..clock import VirtualClock
from ..types import TP

if TYPE_CHECKING:
    from ..app import App
    from ..types import RecordMetadata

__all__ = ["TestDriver"]


class TestDriver:
    """Runs ``app`` in this process on ``memory://`` with a :class:`VirtualClock`."""

    __test__ = False  # not a pytest test class

    def __init__(self, app: App, *, start: float = 1_700_000_000.0, timeout: float = 10.0) -> None:
        self.app = app
        self.clock = VirtualClock(start)
        self.timeout = timeout
        app.clock = self.clock
        app.override(broker=f"memory://driver-{uuid.uuid4().hex}")
        self._running: Any = None

    async def __aenter__(self) -> TestDriver:
        self._running = self.app.running()
        await self._running.__aenter__()
        await self.settle()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._running.__aexit__(exc_type, exc, tb)

    async def send(self, topic: str, key: Any = None, value: Any = None,
                   **kwargs: Any) -> RecordMetadata:
        fut = await self.app.send(topic, key=key, value=value, **kwargs)
        return await fut

    async def advance(self, seconds: float) -> None:
        """Move the virtual clock; timers due in that time fire, in order."""
        await self.clock.advance(seconds)
        await self.settle()

    async def settle(self) -> None:
        """Wait until every message in the app's source topics has been processed.

        Processed means committed: the conductor checkpoints and the committed
        offsets reach the end of every assigned partition.
        """
        app = self.app
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        conductor = app.conductor
        while True:
            for _ in range(10):
                await asyncio.sleep(0)
            if app.fatal_error is not None:
                raise app.fatal_error
            await conductor.checkpoints.checkpoint()
            consumer = conductor.consumer
            if consumer is None or not conductor.topic_names:
                return  # no group consumer, or one for the leader election only
            assigned = conductor.assignment()
            if assigned:
                ends = await consumer.end_offsets(assigned)
                committed = conductor.ctx.offsets.committed
                caught_up = all(committed.get(tp, 0) >= end for tp, end in ends.items() if end)
                if caught_up and not any(len(b) for b in conductor.buffers()):
                    return
            if loop.time() > deadline:
                raise TimeoutError(f"The app did not process its input within {self.timeout}s")
            await asyncio.sleep(0.001)

    async def read(self, topic: str) -> list[Any]:
        """The decoded values of every message in ``topic`` (all partitions, in offset order)."""
        transport = self.app.transport
        counts = await transport.partition_counts([topic])
        n = counts.get(topic) or 0
        consumer = transport.create_consumer(None)
        await consumer.start()
        try:
            tps = [TP(topic, p) for p in range(n)]
            ends = await consumer.end_offsets(tps)
            consumer.assign({tp: 0 for tp in tps})
            messages = []
            remaining = sum(ends.values())
            while remaining > 0:
                batch = await consumer.getmany(10_000, 0.5)
                if not batch:
                    break
                messages.extend(batch)
                remaining -= len(batch)
        finally:
            await consumer.stop()
        channel = self.app.resolve_channel(topic)
        decode = channel.schema.value_decoder(default_serializer=self.app.conf.value_serializer,
                                              channel=channel)
        return [decode(m.value) for m in sorted(messages, key=lambda m: (m.partition, m.offset))]
