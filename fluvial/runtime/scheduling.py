"""``@app.task``, ``@app.timer`` (no drift) and ``@app.crontab``, on the app's clock.

``on_leader=True`` timers and crontabs fire on every worker's clock but run
only where ``app.is_leader()`` holds at that moment, so they follow the
leadership from worker to worker. An ``on_leader`` task runs each time the
worker becomes the group's leader, and is cancelled if it stops being it
(a rebalance that gives the leadership back to the same worker changes
nothing).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from croniter import croniter

from ..exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from ..app import App

__all__ = ["Scheduler"]

logger = logging.getLogger(__name__)


@dataclass
class Scheduled:
    fun: Callable[..., Any]
    kind: str  # "task", "timer" or "crontab"
    on_leader: bool = False
    interval: float = 0.0
    cron: str = ""
    timezone: tzinfo | None = None
    runs: int = 0
    #: An ``on_leader`` task running now.
    running: asyncio.Task[Any] | None = None

    @property
    def name(self) -> str:
        return f"{self.fun.__module__}.{self.fun.__qualname__}"


class Scheduler:
    """Keeps the app's scheduled functions; the worker starts one task for each."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.entries: list[Scheduled] = []
        self._started = False
        self._leader = False

    def add_task(self, fun: Callable[..., Any], *, on_leader: bool = False) -> None:
        self.entries.append(Scheduled(fun, "task", on_leader=on_leader))

    def add_timer(self, fun: Callable[..., Any], interval: float, *, on_leader: bool) -> None:
        if interval <= 0:
            raise ImproperlyConfigured(f"Timer interval must be > 0 seconds, got {interval}")
        self.entries.append(Scheduled(fun, "timer", on_leader=on_leader, interval=interval))

    def add_crontab(self, fun: Callable[..., Any], cron: str, *, timezone: Any,
                    on_leader: bool) -> None:
        if not croniter.is_valid(cron):
            raise ImproperlyConfigured(f"Invalid crontab expression {cron!r}")
        tz = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        self.entries.append(Scheduled(fun, "crontab", on_leader=on_leader, cron=cron,
                                      timezone=tz))

    def start(self) -> None:
        self._started = True
        for entry in self.entries:
            if entry.kind == "task" and entry.on_leader:
                entry.running = None
                continue  # started by on_leadership
            runner = {"task": self._run_task, "timer": self._run_timer,
                      "crontab": self._run_crontab}[entry.kind]
            self.app.add_background_task(runner(entry), f"{entry.kind}:{entry.name}")
        self.on_leadership(self._leader)

    def stop(self) -> None:
        """The worker stopped: its background tasks are cancelled by the app."""
        self._started = False

    def on_leadership(self, leader: bool) -> None:
        """This worker became (or stopped being) the leader: start (stop) ``on_leader`` tasks."""
        self._leader = leader
        if not self._started:
            return
        for entry in self.entries:
            if entry.kind != "task" or not entry.on_leader:
                continue
            if leader and entry.running is None:
                entry.running = self.app.add_background_task(
                    self._run_leader_task(entry), f"task:{entry.name}")
            elif not leader and entry.running is not None:
                entry.running.cancel()
                entry.running = None

    async def _run_leader_task(self, entry: Scheduled) -> None:
        from ..app import call_with_app

        entry.runs += 1
        try:
            await call_with_app(entry.fun, self.app)
        finally:
            if entry.running is asyncio.current_task():
                entry.running = None

    async def _call(self, entry: Scheduled) -> None:
        from ..app import call_with_app

        if entry.on_leader and not self.app.is_leader():
            return
        entry.runs += 1
        await call_with_app(entry.fun, self.app)

    async def _run_task(self, entry: Scheduled) -> None:
        await self._call(entry)

    async def _run_timer(self, entry: Scheduled) -> None:
        """Fire at start + n * interval; a late run does not shift later ones."""
        clock = self.app.clock
        interval = entry.interval
        next_at = clock.monotonic() + interval
        while True:
            await clock.sleep(next_at - clock.monotonic())
            await self._call(entry)
            next_at += interval
            now = clock.monotonic()
            if next_at <= now:
                skipped = int((now - next_at) // interval) + 1
                logger.warning("Timer %s ran %.3fs late; skipping %d run(s)",
                               entry.name, now - next_at + interval, skipped)
                next_at += skipped * interval

    async def _run_crontab(self, entry: Scheduled) -> None:
        clock = self.app.clock
        tz = entry.timezone or self.app.conf.tz
        while True:
            now = datetime.fromtimestamp(clock.time(), tz)
            next_at = croniter(entry.cron, now).get_next(datetime)
            await clock.sleep(next_at.timestamp() - clock.time())
            await self._call(entry)
