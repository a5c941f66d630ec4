"""``@app.task``, ``@app.timer`` (no drift) and ``@app.crontab``, on the app's clock."""

from __future__ import annotations

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

    @property
    def name(self) -> str:
        return f"{self.fun.__module__}.{self.fun.__qualname__}"


class Scheduler:
    """Keeps the app's scheduled functions; the worker starts one task for each."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.entries: list[Scheduled] = []

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
        for entry in self.entries:
            runner = {"task": self._run_task, "timer": self._run_timer,
                      "crontab": self._run_crontab}[entry.kind]
            self.app.add_background_task(runner(entry), f"{entry.kind}:{entry.name}")

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
