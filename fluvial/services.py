"""``faust.Service``: a class with a lifetime, started and stopped with the worker.

Faust's is ``mode.Service``; this one keeps the part apps use: the hooks
``on_first_start``/``on_start``/``on_started``/``on_stop``/``on_shutdown``,
methods decorated ``@Service.task`` (run in the background while the service
runs) and ``@Service.timer(seconds)`` (run every interval), ``sleep()`` that
returns early when the service stops, and ``should_stop``. Declare one with
``@app.service`` (the class or an instance).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["Service"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Coroutine[Any, Any, Any]])

_TASK = "_fluvial_service_task"
_TIMER = "_fluvial_service_timer"


class Service:
    """Subclass it and override the hooks; decorate methods with ``task`` or ``timer``."""

    def __init__(self, *, beacon: Any = None, loop: Any = None) -> None:
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopped = asyncio.Event()
        self._started_once = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    # -- decorators ------------------------------------------------------------

    @staticmethod
    def task(fun: F) -> F:
        """Run this method in the background while the service runs."""
        setattr(fun, _TASK, True)
        return fun

    @staticmethod
    def timer(interval: float) -> Callable[[F], F]:
        """Run this method every ``interval`` seconds while the service runs."""
        if interval <= 0:
            raise ValueError(f"Service.timer interval must be > 0 seconds, got {interval}")

        def decorate(fun: F) -> F:
            setattr(fun, _TIMER, float(interval))
            return fun
        return decorate

    # -- hooks -------------------------------------------------------------------

    async def on_first_start(self) -> None:
        """Before the first start only."""

    async def on_start(self) -> None:
        """Before the service's tasks start."""

    async def on_started(self) -> None:
        """Once its tasks run."""

    async def on_stop(self) -> None:
        """When it is asked to stop, before its tasks are cancelled."""

    async def on_shutdown(self) -> None:
        """After its tasks ended."""

    # -- lifetime ----------------------------------------------------------------

    @property
    def should_stop(self) -> bool:
        return self._stopped.is_set()

    async def start(self) -> None:
        self._stopped.clear()
        if not self._started_once:
            self._started_once = True
            await self.on_first_start()
        await self.on_start()
        for name in dir(type(self)):
            method: Any = getattr(self, name, None)
            if method is None:
                continue
            if getattr(method, _TASK, False):
                self._spawn(method(), name)
            interval = getattr(method, _TIMER, None)
            if interval is not None:
                self._spawn(self._every(interval, method), name)
        await self.on_started()

    async def stop(self) -> None:
        self._stopped.set()
        await self.on_stop()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.on_shutdown()

    async def sleep(self, seconds: float) -> None:
        """Sleep, or less if the service stops meanwhile."""
        try:
            await asyncio.wait_for(self._stopped.wait(), seconds)
        except TimeoutError:
            pass

    async def wait_until_stopped(self) -> None:
        await self._stopped.wait()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"{type(self).__name__}.{name}")
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("Service task %s crashed", task.get_name(), exc_info=task.exception())

    async def _every(self, interval: float, method: Callable[[], Coroutine[Any, Any, Any]]
                     ) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + interval
        while not self.should_stop:
            await self.sleep(next_at - loop.time())
            if self.should_stop:
                return
            await method()
            next_at += interval
