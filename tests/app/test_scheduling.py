"""Tasks, timers without drift and crontabs, on a virtual clock."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

import fluvial as faust
from fluvial.exceptions import ImproperlyConfigured
from fluvial.testing.driver import TestDriver


async def test_timer_fires_every_interval_without_drift() -> None:
    app = faust.App("timers")
    fired: list[float] = []

    @app.timer(interval=1.0)
    async def tick(app: faust.App) -> None:
        fired.append(app.clock.monotonic())
        await app.clock.sleep(0.3)  # slow body: the next run must not shift

    async with TestDriver(app) as driver:
        await driver.advance(5.05)
    assert fired == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0])


async def test_task_runs_once_with_or_without_app_argument() -> None:
    app = faust.App("tasks")
    calls: list[str] = []

    @app.task
    async def plain() -> None:
        calls.append("plain")

    @app.task()
    async def with_app(app: faust.App) -> None:
        calls.append(app.conf.id)

    async with TestDriver(app) as driver:
        await driver.advance(10)
    assert sorted(calls) == ["plain", "tasks"]


async def test_crontab_fires_on_schedule_in_its_timezone() -> None:
    app = faust.App("cron")
    fired: list[datetime] = []

    @app.crontab("0 * * * *", timezone="UTC")
    async def hourly() -> None:
        fired.append(datetime.fromtimestamp(app.clock.time(), timezone.utc))

    start = datetime(2026, 1, 1, 10, 30, tzinfo=timezone.utc).timestamp()
    driver = TestDriver(app, start=start)
    async with driver:
        await driver.advance(3 * 3600)
    assert [d.strftime("%H:%M") for d in fired] == ["11:00", "12:00", "13:00"]


def test_bad_schedules_are_rejected() -> None:
    app = faust.App("bad-schedules")
    with pytest.raises(ImproperlyConfigured):
        app.timer(interval=0)(lambda: None)
    with pytest.raises(ImproperlyConfigured):
        app.crontab("not a cron")(lambda: None)


async def test_service_started_and_stopped() -> None:
    app = faust.App("services")
    events: list[str] = []

    @app.service
    class Pinger:
        def __init__(self, app: faust.App) -> None:
            self.app = app

        async def start(self) -> None:
            events.append("start")

        async def stop(self) -> None:
            events.append("stop")

    async with TestDriver(app):
        assert events == ["start"]
    assert events == ["start", "stop"]
