"""A ``memory://`` producer whose delivery of chosen messages is held until released.

Not a mock of the thing under test (the checkpoint): the real memory producer
delivers everything else, and the held messages reach the broker on release.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fluvial.transport.memory import MemoryProducer
from fluvial.types import RecordMetadata

__all__ = ["HeldProducer"]


class HeldProducer:
    """Sequence numbers as :class:`~fluvial.types.ProducerT` defines them; a message
    ``hold(topic, value)`` picks is delivered only by :meth:`release`."""

    def __init__(self, inner: MemoryProducer, hold: Callable[[str, Any], bool]) -> None:
        self.inner = inner
        self.hold = hold
        self.seq = 0
        #: (sequence number, topic, key, value, options, future or None)
        self.held: list[tuple[int, str, Any, Any, dict[str, Any], Any]] = []
        #: Calls of ``wait_delivered`` waiting now, and every sequence number waited for.
        self.waiting = 0
        self.waited_for: list[int] = []

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        self.release()
        await self.inner.stop()

    def send(self, topic: str, key: Any, value: Any, **options: Any
             ) -> asyncio.Future[RecordMetadata]:
        self.seq += 1
        if self.hold(topic, value):
            fut: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
            self.held.append((self.seq, topic, key, value, options, fut))
            return fut
        return self.inner.send(topic, key, value, **options)

    def send_soon(self, topic: str, key: Any, value: Any, **options: Any) -> None:
        self.seq += 1
        if self.hold(topic, value):
            self.held.append((self.seq, topic, key, value, options, None))
            return
        self.inner.send_soon(topic, key, value, **options)

    async def flush(self) -> None:
        while self.held:
            await asyncio.sleep(0.005)
        await self.inner.flush()

    def mark(self) -> int:
        return self.seq

    async def wait_delivered(self, seq: int) -> None:
        self.waiting += 1
        self.waited_for.append(seq)
        try:
            while any(held[0] <= seq for held in self.held):
                await asyncio.sleep(0.005)
        finally:
            self.waiting -= 1
        await self.inner.flush()

    def release(self, pick: Callable[[Any], bool] | None = None) -> None:
        """Deliver the held messages (in the order they were sent); with ``pick``,
        those whose value it picks."""
        held = [h for h in self.held if pick is None or pick(h[3])]
        self.held = [h for h in self.held if h not in held]
        for _, topic, key, value, options, fut in held:
            delivered = self.inner.send(topic, key, value, **options)
            if fut is not None and not fut.done():
                fut.set_result(delivered.result())
