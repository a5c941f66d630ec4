"""Time, injected: the system clock for workers, a virtual clock for tests.

Timers, crontabs and commit intervals take their time from a :class:`Clock`,
so tests advance time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar

T = TypeVar("T")

__all__ = ["Clock", "SystemClock", "VirtualClock", "wait_event", "wait_within"]


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


class VirtualClock:
    """A clock that moves only when :meth:`advance` is called.

    >>> clock = VirtualClock(start=1000.0)
    >>> clock.time()
    1000.0
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._start = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._start

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose deadline passes, in order.

        Each woken task gets to run before time moves on to the next deadline,
        so a timer that re-arms itself fires once per interval.
        """
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)
            await _settle()
        self._now = target
        await _settle()


async def _settle(rounds: int = 20) -> None:
    """Let ready tasks run (a bounded number of loop iterations)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True if it is set.

    Unlike ``asyncio.wait_for(event.wait(), timeout)`` before Python 3.12, a
    cancellation that arrives as the event is set is never swallowed (the
    caller's loop would go on running, and its worker's stop wait for it).
    """
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    return event.is_set()


async def wait_within(aw: Awaitable[T], timeout: float, *, abandon: bool = False) -> T:
    """``await aw``, cancelled and ``TimeoutError`` raised after ``timeout`` seconds.

    ``asyncio.wait_for`` before Python 3.12 returns the result when the caller
    is cancelled in the tick ``aw`` completes: the cancellation is lost, and a
    loop using it runs on after its worker's stop cancelled it (the fetch
    loop's producer flush did so). Here a cancellation of the caller always
    propagates; ``aw`` is cancelled with it.

    On a timeout, ``aw`` is cancelled and waited for, like ``wait_for`` does;
    with ``abandon=True`` it is cancelled and left, so an ``aw`` that does not
    end on its cancellation cannot hang the caller.
    """
    task = asyncio.ensure_future(aw)
    try:
        await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not task.done():
        task.cancel()
        if abandon:
            raise TimeoutError
        # Like wait_for: once this returns, aw no longer runs.
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is None:
            return task.result()
        raise TimeoutError
    return task.result()
