"""Waiting on events and awaitables without losing a cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from fluvial.clock import wait_event, wait_within


async def _cancel_as_the_event_is_set(wait: Callable[[asyncio.Event, float], Awaitable[object]]
                                      ) -> asyncio.Task[None]:
    """A loop waiting on an event, cancelled in the same tick the event is set."""
    event = asyncio.Event()

    async def loop_forever() -> None:
        while True:
            await wait(event, 10.0)
            event.clear()

    task = asyncio.create_task(loop_forever())
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()
    await asyncio.wait({task}, timeout=1.0)
    return task


async def test_a_cancellation_arriving_with_the_event_stops_the_waiter() -> None:
    task = await _cancel_as_the_event_is_set(wait_event)
    assert task.done() and task.cancelled()


async def test_wait_event_reports_set_or_timed_out() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5.0) is True
    assert await wait_event(event, 0.0) is True


async def test_wait_for_would_have_swallowed_it() -> None:
    """Why ``wait_event`` exists: before Python 3.12, ``asyncio.wait_for`` returns the
    inner result when the cancellation and the event come together."""
    import sys

    if sys.version_info >= (3, 12):
        pytest.skip("asyncio.wait_for no longer loses the cancellation")

    async def with_wait_for(event: asyncio.Event, timeout: float) -> object:
        return await asyncio.wait_for(event.wait(), timeout)

    task = await _cancel_as_the_event_is_set(with_wait_for)
    try:
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)


async def test_a_cancellation_arriving_as_the_awaitable_completes_stops_the_caller() -> None:
    """``wait_within`` in a loop: the caller's cancellation wins over a result of the
    same tick (``asyncio.wait_for`` before 3.12 returns the result and loses it)."""

    async def within(event: asyncio.Event, timeout: float) -> object:
        return await wait_within(event.wait(), timeout)

    task = await _cancel_as_the_event_is_set(within)
    assert task.done() and task.cancelled()


async def test_wait_within_returns_the_result_or_times_out_and_cancels() -> None:
    async def answer() -> int:
        await asyncio.sleep(0.01)
        return 42

    assert await wait_within(answer(), 5.0) == 42
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        await wait_within(forever(), 0.05)
    # Like wait_for: when it raises, the awaitable no longer runs.
    assert started.is_set() and cancelled.is_set()

    async def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await wait_within(fails(), 5.0)


async def test_cancelling_the_caller_cancels_the_awaitable() -> None:
    inner_cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            inner_cancelled.set()
            raise

    caller = asyncio.create_task(wait_within(forever(), 60.0))
    await asyncio.sleep(0.01)
    caller.cancel()
    await asyncio.wait({caller}, timeout=1.0)
    assert caller.cancelled()
    await asyncio.wait_for(inner_cancelled.wait(), 1.0)


async def test_abandon_leaves_an_awaitable_that_ignores_its_cancellation() -> None:
    release = asyncio.Event()
    cancels = 0

    async def stubborn() -> None:
        nonlocal cancels
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancels += 1
                await release.wait()

    with pytest.raises(TimeoutError):
        await wait_within(stubborn(), 0.05, abandon=True)
    await asyncio.sleep(0.01)
    assert cancels == 1  # cancelled, and not waited for: we are here
    release.set()
    await asyncio.sleep(0.01)
