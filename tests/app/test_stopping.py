"""A worker stops promptly and cleanly in the middle of a busy table pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import fluvial as faust

from .conftest import eventually


class Order(faust.Record, serializer="json"):
    account_id: str
    amount: int


async def stop_while_busy(broker_url: str, app_id: str, topic_name: str,
                          stop_after: int) -> tuple[faust.App, float]:
    """Feed 20,000 orders through group_by + table; stop after ``stop_after`` of them.

    Returns the app and the seconds its stop took.
    """
    app = faust.App(app_id, broker=broker_url, topic_partitions=4, broker_commit_every=500)
    topic = app.topic(topic_name, value_type=Order, partitions=4)
    counts = app.Table("counts", default=int)
    done = 0

    @app.agent(topic)
    async def process(orders: faust.Stream[Order]) -> None:
        nonlocal done
        async for order in orders.group_by(Order.account_id):
            counts[order.account_id] += order.amount
            done += 1

    loop = asyncio.get_running_loop()
    async with app.running():
        for i in range(20_000):
            topic.send_soon(value=Order(account_id=f"a{i % 97}", amount=1))
        await app.producer.flush()
        await eventually(lambda: done >= stop_after, message="events flowing")
        started = loop.time()
    return app, loop.time() - started


@pytest.mark.parametrize("stop_after", [2_000, 8_000, 14_000])
async def test_stop_under_load_is_prompt_and_error_free(
    broker_url: str, unique: Callable[[str], str], stop_after: int
) -> None:
    """Stopping cancels the fetch loop whatever it awaits (a checkpoint's producer
    flush included): no stop step runs into its time limit, no fatal error."""
    app, took = await stop_while_busy(broker_url, unique("stopper"), unique("orders"),
                                      stop_after)
    assert app.fatal_error is None, app.fatal_error
    assert took < 10.0, f"the stop took {took:.1f} s"


async def test_a_stop_step_that_ignores_its_cancellation_is_reported_and_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A service whose stop() hangs and swallows the cancellation: the worker reports
    it by name and goes on stopping (it does not wait for the step forever)."""
    from fluvial.runtime import lifecycle

    monkeypatch.setattr(lifecycle, "STOP_STEP_TIMEOUT_S", 0.2)
    app = faust.App("stubborn-stop", broker="memory://stubborn-stop")
    cancelled = 0

    @app.service
    class Stubborn:
        def __init__(self, app: faust.App) -> None:
            self.app = app

        async def stop(self) -> None:
            nonlocal cancelled
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    cancelled += 1
                    if cancelled > 1:  # the test's teardown: end after all
                        raise
                    # The first one is swallowed: the bug this guards against.

    loop = asyncio.get_running_loop()
    async with app.running():
        started = loop.time()
    took = loop.time() - started
    assert took < 5.0, f"the stop took {took:.1f} s"
    assert cancelled == 1
    assert app.fatal_error is not None
    assert "service Stubborn did not finish" in str(app.fatal_error)
    assert not app.started
