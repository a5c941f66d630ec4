"""The queue of events between the conductor and the actors of one subscriber.

An event is queued as its :class:`~fluvial.types.Message`, decoded key and value
set (``decoded_key``, ``decoded_value``): no :class:`~fluvial.events.Event` is
made unless user code asks for one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .types import TP, Message

if TYPE_CHECKING:
    from .clock import Clock

__all__ = ["EventBuffer"]


class EventBuffer:
    """Events waiting for one subscriber; several actors may take from it.

    The conductor adds whole batches; ``full`` tells it to pause the
    partitions that feed this buffer (``draining``), and ``on_drain`` fires
    once the buffer is back under half its size so they resume. Nothing is
    ever dropped.
    """

    __slots__ = ("_waiters", "draining", "error", "items", "maxsize", "on_drain", "released",
                 "topics")

    def __init__(self, maxsize: int, topics: Iterable[str] = ()) -> None:
        self.items: deque[Message] = deque()
        self.maxsize = maxsize
        self.topics = frozenset(topics)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.on_drain: Callable[[EventBuffer], None] | None = None
        self.draining = False
        #: An error from a companion task (e.g. a group_by forwarder), raised to readers.
        self.error: BaseException | None = None
        #: Set when the stream that owned this buffer ended (its actor crashed): the
        #: next stream of the same channel reads it on, queued events included.
        self.released = False

    def __len__(self) -> int:
        return len(self.items)

    @property
    def full(self) -> bool:
        return len(self.items) >= self.maxsize


    def put(self, message: Message) -> None:
        self.items.append(message)
        self._wake(1)

    def put_many(self, messages: list[Message]) -> None:
        self.items.extend(messages)
        self._wake(len(messages))

    def put_back(self, messages: list[Message]) -> None:
        """Return events taken from this buffer to its front (an agent retries them)."""
        self.items.extendleft(reversed(messages))
        self._wake(len(messages))

    def fail(self, error: BaseException) -> None:
        """Make every reader raise ``error`` (used when a companion task dies)."""
        self.error = error
        self._wake(len(self._waiters))

    def _wake(self, n: int) -> None:
        waiters = self._waiters
        while n and waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                n -= 1

    def get_nowait(self) -> Message | None:
        if self.error is not None:
            raise self.error
        items = self.items
        if not items:
            return None
        message = items.popleft()
        if self.draining and len(items) <= self.maxsize >> 1:
            self.drain()
        return message

    def drain(self) -> None:
        """The buffer is back under half its size: let the conductor resume its partitions."""
        self.draining = False
        if self.on_drain is not None:
            self.on_drain(self)

    async def get(self) -> Message:
        while True:
            message = self.get_nowait()
            if message is not None:
                return message
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                # Pass the wake-up on: another reader may take the event.
                if fut.done() and not fut.cancelled():
                    self._wake(1)
                raise

    async def wait_for_event(self, timeout: float, clock: Clock) -> bool:
        """Wait until an event is available or ``timeout`` passes on ``clock``."""
        if self.items or self.error is not None:
            return True
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        timer = asyncio.ensure_future(clock.sleep(timeout))
        try:
            await asyncio.wait((fut, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            fut.cancel()
        return bool(self.items) or self.error is not None

    #: Whether events taken from this buffer may still be in an actor's hands
    #: after :meth:`discard` (False where discard cancels the actors).
    keeps_actors = True

    def discard(self, tps: set[TP]) -> list[Message]:
        """Drop queued events of revoked partitions; returns their (tracked) messages.

        In place: the streams reading this buffer hold on to ``items`` itself.
        """
        items = self.items
        dropped: list[Message] = []
        for _ in range(len(items)):
            message = items.popleft()
            if message.tp in tps:
                dropped.append(message.origin)
            else:
                items.append(message)
        return dropped
