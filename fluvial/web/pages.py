"""The pages every worker serves besides the app's own views.

- ``/``: the app, this worker and its assignment (JSON).
- ``/router/``, ``/router/{table}/``, ``/router/{table}/{key}/``: which worker
  holds which table partitions, and the URL of a key's owner (Faust's router pages).
- ``/table/``, ``/table/{table}/``, ``/table/{table}/{key}/`` (with
  ``web_tables_enabled``): the tables, and a key's value, answered by the worker
  that owns the key (forwarded there from any worker).
- ``/table/{table}/live/`` (with ``web_tables_enabled``), a websocket: the
  table's committed changes as they happen (see :mod:`.sockets`).
- ``/healthz``: 200 while the worker's event loop answers (liveness).
- ``/readyz``: 200 once the worker runs and every table partition assigned to it
  is restored, else 503 saying what it waits for (readiness).
- ``/metrics`` (with ``web_metrics_enabled``): Prometheus metrics
  (:mod:`fluvial.sensors.prometheus`).
- ``/stats/``, ``/stats/group/``, ``/dashboard/``: the worker's and the group's
  figures, and the live dashboard (:mod:`.observe`).
"""

from __future__ import annotations

import asyncio
import json as _json
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute, Route

from .._version import __version__
from ..exceptions import RouterError, SameNode
from .base import Request, Response, Web
from .sockets import live_route
from .views import View

if TYPE_CHECKING:
    from ..tables import Table

__all__ = ["builtin_routes"]

#: Seconds the worker's loop may take to answer ``/healthz`` (``web_in_thread``).
LIVENESS_TIMEOUT_S = 2.0


class AppInfo(View):
    async def get(self, request: Request) -> Response:
        app = self.app
        conf = app.conf
        return self.json({
            "app": conf.id,
            "version": conf.version,
            "fluvial": __version__,
            "url": conf.canonical_url,
            "running": app.started,
            "in_process_broker": app.transport.in_process,
            "processing_guarantee": conf.processing_guarantee,
            "is_leader": app.is_leader(),
            "agents": sorted(app.agents),
            "tables": [t.name for t in app.tables],
            "topics": sorted(app.conductor.topic_names),
            "assignment": _assignment(app.conductor.assignment()),
        })


def _assignment(tps: Any) -> dict[str, list[int]]:
    result: dict[str, list[int]] = {}
    for tp in tps:
        result.setdefault(tp.topic, []).append(tp.partition)
    return {topic: sorted(parts) for topic, parts in sorted(result.items())}


class TableView(View):
    def table_or_404(self, name: str) -> Table:
        if name not in self.app.tables:
            raise self.NotFound("Unknown table", table=name)
        return self.app.tables[name]


class RouterList(View):
    async def get(self, request: Request) -> Response:
        return self.json(self.app.router.tables_metadata())


class RouterDetail(TableView):
    async def get(self, request: Request, name: str) -> Response:
        self.table_or_404(name)
        return self.json(self.app.router.table_metadata(name))


class RouterKey(TableView):
    async def get(self, request: Request, name: str, key: str) -> Response:
        self.table_or_404(name)
        try:
            return self.json(self.app.router.key_store(name, key))
        except RouterError as exc:
            raise self.ServiceUnavailable(str(exc), retry_after=1) from exc


class TableList(TableView):
    async def get(self, request: Request) -> Response:
        return self.json([_describe(t) for t in self.app.tables])


class TableDetail(TableView):
    async def get(self, request: Request, name: str) -> Response:
        return self.json(_describe(self.table_or_404(name)))


class TableKey(TableView):
    async def get(self, request: Request, name: str, key: str) -> Response:
        table = self.table_or_404(name)
        try:
            return await self.app.router.route_req(name, key, self.web, request)
        except SameNode:
            pass
        for candidate in _key_candidates(key):
            if candidate in table:
                return self.json(table[candidate])
        raise self.NotFound("Key not found", table=name, key=key)


def _key_candidates(key: str) -> list[Any]:
    """The URL's key as a string, and as the JSON value it spells (``42``: also the int)."""
    candidates: list[Any] = [key]
    try:
        decoded = _json.loads(key)
    except ValueError:
        return candidates
    if decoded != key and isinstance(decoded, (int, float, bool)):
        candidates.append(decoded)
    return candidates


def _describe(table: Table) -> dict[str, Any]:
    return {"name": table.name, "help": table.help, "partitions": table.partitions,
            "global": table.is_global, "changelog_topic": table.changelog_topic.get_topic_name()}


class Health(View):
    async def get(self, request: Request) -> Response:
        loop = self.web.worker_loop
        if loop is not None and loop is not asyncio.get_running_loop():
            answered = asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop)
            try:
                await asyncio.wait_for(asyncio.wrap_future(answered), LIVENESS_TIMEOUT_S)
            except TimeoutError:
                return self.error(503, "The worker's event loop did not answer in "
                                  f"{LIVENESS_TIMEOUT_S:g} s")
        if self.app.fatal_error is not None:
            return self.error(503, f"The worker is stopping: {self.app.fatal_error}")
        return self.json({"status": "ok"})


class Ready(View):
    async def get(self, request: Request) -> Response:
        app = self.app
        if not app.started:
            return self.error(503, "The worker has not started")
        if app.fatal_error is not None:
            return self.error(503, f"The worker is stopping: {app.fatal_error}")
        recovering = sorted(app.tables.recovering)
        if recovering:
            return self.error(503, "Restoring table partitions", partitions=recovering)
        return self.json({"status": "ready",
                          "assignment": _assignment(app.conductor.assignment())})




def builtin_routes(web: Web) -> list[BaseRoute]:
    """The routes of the built-in pages (after the app's own, which win on a clash)."""
    pages: list[tuple[str, type[View], str]] = [
        ("/", AppInfo, "index"),
        ("/healthz", Health, "healthz"),
        ("/readyz", Ready, "readyz"),
        ("/router/", RouterList, "router:list"),
        ("/router/{name}/", RouterDetail, "router:detail"),
        ("/router/{name}/{key}/", RouterKey, "router:key"),
    ]
    from .observe import (
        DashboardAsset,
        DashboardEvents,
        DashboardPage,
        GroupStats,
        Metrics,
        WorkerStats,
    )

    if web.app.conf.web_metrics_enabled:
        pages.append(("/metrics", Metrics, "metrics"))

    pages += [
        ("/stats/", WorkerStats, "stats"),
        ("/stats/group/", GroupStats, "stats:group"),
        ("/dashboard/", DashboardPage, "dashboard"),
        ("/dashboard/events", DashboardEvents, "dashboard:events"),
        ("/dashboard/{name}", DashboardAsset, "dashboard:asset"),
    ]
    if web.app.conf.web_tables_enabled:
        pages += [
            ("/table/", TableList, "table:list"),
            ("/table/{name}/", TableDetail, "table:detail"),
            ("/table/{name}/{key}/", TableKey, "table:key"),
        ]
    routes: list[BaseRoute] = []
    for path, cls, name in pages:
        view = cls(web.app, web)
        view.view_name, view.view_path = name, path
        routes.append(Route(path, view, methods=sorted(view.get_methods()), name=name))
    if web.app.conf.web_tables_enabled:
        routes.append(live_route(web))
    return routes
