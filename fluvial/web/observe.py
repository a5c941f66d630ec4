"""The observability pages every worker serves (see :mod:`.pages`).

- ``/metrics``: Prometheus metrics (:mod:`fluvial.sensors.prometheus`).
- ``/stats/``: this worker's figures (JSON, :func:`~fluvial.sensors.snapshot.worker_stats`).
- ``/stats/group/``: every worker's, asked by this one (``fluvial status`` reads it).
- ``/dashboard/``: a live page of the group, fed by ``/dashboard/events``
  (server-sent events: the group's figures every second).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from starlette.responses import StreamingResponse

from ..sensors.snapshot import group_stats, worker_stats
from .base import Request, Response
from .views import View

__all__ = ["DashboardAsset", "DashboardEvents", "DashboardPage", "GroupStats", "Metrics",
           "WorkerStats"]

STATIC = Path(__file__).parent / "static"

#: Seconds between two updates of the dashboard.
DASHBOARD_INTERVAL_S = 1.0

T = TypeVar("T")


class _WorkerView(View):
    async def in_worker(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the worker's loop (the server may run on its own, in a thread)."""
        loop = self.web.worker_loop
        if loop is None or loop is asyncio.get_running_loop():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


class Metrics(_WorkerView):
    async def get(self, request: Request) -> Response:
        from ..sensors.prometheus import CONTENT_TYPE, exposition

        return self.bytes(await self.in_worker(exposition(self.app)), content_type=CONTENT_TYPE)


class WorkerStats(_WorkerView):
    async def get(self, request: Request) -> Response:
        return self.json(await self.in_worker(worker_stats(self.app)))


class GroupStats(_WorkerView):
    async def get(self, request: Request) -> Response:
        return self.json(await self.in_worker(group_stats(self.app)))


class DashboardPage(View):
    async def get(self, request: Request) -> Response:
        html = (STATIC / "dashboard.html").read_text()
        return self.html(html.replace("{{app}}", self.app.conf.id))


class DashboardAsset(View):
    """``/dashboard/dashboard.js`` and ``/dashboard/dashboard.css``."""

    TYPES = {".js": "text/javascript", ".css": "text/css"}

    async def get(self, request: Request, name: str) -> Response:
        path = STATIC / name
        if path.suffix not in self.TYPES or path.parent != STATIC or not path.is_file():
            raise self.NotFound("No such file", name=name)
        return self.bytes(path.read_bytes(), content_type=self.TYPES[path.suffix])


class DashboardEvents(_WorkerView):
    async def get(self, request: Request) -> Any:
        async def stream() -> AsyncIterator[str]:
            while not self.web.stopping and not await request.is_disconnected():
                try:
                    stats = await self.in_worker(group_stats(self.app))
                except Exception as exc:  # reported on the page, the stream goes on
                    stats = {"app": self.app.conf.id, "workers": [], "unreachable": {},
                             "error": f"{type(exc).__name__}: {exc}"}
                yield f"data: {json.dumps(stats, default=str)}\n\n"
                await asyncio.sleep(DASHBOARD_INTERVAL_S)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
