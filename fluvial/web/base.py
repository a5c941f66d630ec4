"""Requests, responses and :class:`Web`, the routes a worker serves (``app.web``).

The server is Starlette on uvicorn, in the worker's own event loop
(:mod:`fluvial.web.server`). :attr:`Web.asgi` is the ASGI application: the
worker serves it, and it can be mounted into another ASGI app as well.
"""

from __future__ import annotations

import asyncio
import json as _json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request as _StarletteRequest
from starlette.responses import JSONResponse
from starlette.responses import Response as _StarletteResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..codecs import json_dumps
from .exceptions import ParseError, PayloadTooLarge
from .routing import Forwarder
from .sockets import LiveFeed

if TYPE_CHECKING:
    from ..app import App
    from .views import View

__all__ = ["Request", "Response", "Web", "bytes_response", "html", "json", "text"]

logger = logging.getLogger(__name__)

#: Faust's name: views return these (Starlette's ``Response``).
Response = _StarletteResponse


class Request(_StarletteRequest):
    """An HTTP request, with Faust's (aiohttp's) names beside Starlette's.

    ``request.match_info`` (the path parameters), ``request.query``,
    ``await request.read()``, ``await request.text()`` and
    ``await request.json()``; a body larger than ``web_max_request_size``
    raises :class:`~fluvial.web.exceptions.PayloadTooLarge` (413), one that
    is not JSON :class:`~fluvial.web.exceptions.ParseError` (400).
    """

    max_body_size: int | None = None

    @property
    def match_info(self) -> dict[str, Any]:
        return self.path_params

    @property
    def query(self) -> QueryParams:
        return self.query_params

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            limit = self.max_body_size
            chunks: list[bytes] = []
            size = 0
            async for chunk in self.stream():
                size += len(chunk)
                if limit is not None and size > limit:
                    raise PayloadTooLarge(f"Request body over {limit} bytes "
                                          "(the web_max_request_size setting)")
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    async def read(self) -> bytes:
        return await self.body()

    async def text(self) -> str:
        return (await self.body()).decode()

    async def json(self) -> Any:
        body = await self.body()
        try:
            return _json.loads(body)
        except ValueError as exc:
            raise ParseError(f"Request body is not valid JSON: {exc}") from exc


def _response(body: bytes | str, default_type: str, *, content_type: str | None,
              status: int, headers: Mapping[str, str] | None) -> Response:
    return Response(body, status_code=status, media_type=content_type or default_type,
                    headers=dict(headers) if headers else None)


def json(value: Any, *, content_type: str | None = None, status: int = 200,
         reason: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response; Records, dates and decimals are encoded as Faust encodes them."""
    return _response(json_dumps(value), "application/json", content_type=content_type,
                     status=status, headers=headers)


def text(value: str, *, content_type: str | None = None, status: int = 200,
         reason: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
    return _response(value, "text/plain", content_type=content_type, status=status,
                     headers=headers)


def html(value: str, *, content_type: str | None = None, status: int = 200,
         reason: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
    return _response(value, "text/html", content_type=content_type, status=status,
                     headers=headers)


def bytes_response(value: bytes, *, content_type: str | None = None, status: int = 200,
                   reason: str | None = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    return _response(value, "application/octet-stream", content_type=content_type,
                     status=status, headers=headers)


async def _http_error(request: _StarletteRequest, exc: Exception) -> Response:
    """Starlette's own errors (unknown path, wrong method) as JSON, like a view's."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code,
                        headers=exc.headers)


class _BodyLimit:
    """Refuse a request whose declared ``Content-Length`` is over the limit (413)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                    response = JSONResponse(
                        {"error": f"Request body over {self.limit} bytes "
                                  "(the web_max_request_size setting)"}, status_code=413)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class Web:
    """The routes of an app's web server, and Faust's response helpers.

    Views are added with ``@app.page(path)``; :attr:`asgi` is the ASGI
    application serving them, with the built-in pages.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self.views: dict[str, View] = {}
        self._routes: list[BaseRoute] = []
        self._asgi: Starlette | None = None
        #: Sends requests for keys owned elsewhere to their owner (``@app.table_route``).
        self.forwarder = Forwarder(app)
        #: The loop the worker runs on, while serving (the server may have its own).
        self.worker_loop: asyncio.AbstractEventLoop | None = None
        #: The live feed of table changes (``/table/{name}/live/``), see :mod:`.sockets`.
        self.live = LiveFeed(self)
        #: Set as the server begins to stop.
        self.stopping = False

    # -- responses (Faust's Web API) ---------------------------------------------------

    def json(self, value: Any, *, content_type: str | None = None, status: int = 200,
             reason: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
        return json(value, content_type=content_type, status=status, headers=headers)

    def text(self, value: str, *, content_type: str | None = None, status: int = 200,
             reason: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
        return text(value, content_type=content_type, status=status, headers=headers)

    def html(self, value: str, *, content_type: str | None = None, status: int = 200,
             reason: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
        return html(value, content_type=content_type, status=status, headers=headers)

    def bytes(self, value: bytes, *, content_type: str | None = None, status: int = 200,
              reason: str | None = None,
              headers: Mapping[str, str] | None = None) -> Response:
        return bytes_response(value, content_type=content_type, status=status,
                              headers=headers)

    # -- routes ----------------------------------------------------------------------------

    def add_view(self, view_cls: type[View], *, prefix: str = "", path: str,
                 name: str | None = None,
                 cors_options: Mapping[str, Any] | None = None) -> View:
        """Serve ``view_cls`` at ``prefix + path`` (``app.page`` calls this)."""
        view = view_cls(self.app, self)
        name = name or view_cls.__name__
        full = _join(prefix, path)
        view.view_name, view.view_path = name, full
        self.views[name] = view
        endpoint: ASGIApp = view
        if cors_options:
            endpoint = CORSMiddleware(view, **dict(cors_options))
        self._add(Route(full, endpoint, methods=sorted(view.get_methods()), name=name))
        return view

    def add_route(self, path: str, endpoint: Callable[[Request], Awaitable[Response]], *,
                  methods: list[str] | None = None, name: str | None = None) -> None:
        """Serve a plain ``async def endpoint(request) -> Response`` at ``path``."""
        async def handle(request: _StarletteRequest) -> _StarletteResponse:
            return await endpoint(self.request(request.scope, request.receive))
        self._add(Route(path, handle, methods=methods, name=name))

    def add_websocket_route(self, path: str, endpoint: Callable[..., Awaitable[None]], *,
                            name: str | None = None) -> None:
        """Serve a websocket endpoint (a Starlette ``WebSocket`` handler) at ``path``."""
        self._add(WebSocketRoute(path, endpoint, name=name))

    def add_static(self, prefix: str, file_or_directory: str | Path, *,
                   name: str | None = None) -> None:
        """Serve the files under a directory at ``prefix``."""
        self._add(Mount(prefix.rstrip("/") or "/",
                        app=StaticFiles(directory=str(file_or_directory)), name=name))

    def mount(self, prefix: str, asgi_app: ASGIApp, *, name: str | None = None) -> None:
        """Serve another ASGI application (a FastAPI app, say) under ``prefix``."""
        self._add(Mount(prefix.rstrip("/"), app=asgi_app, name=name))

    def url_for(self, view_name: str, **kwargs: Any) -> str:
        """The path of the view named ``view_name``, with its parameters filled in."""
        return str(self.asgi.url_path_for(view_name, **kwargs))

    def request(self, scope: Scope, receive: Receive) -> Request:
        request = Request(scope, receive)
        request.max_body_size = self.app.conf.web_max_request_size
        return request

    def _add(self, route: BaseRoute) -> None:
        self._routes.append(route)
        if self._asgi is not None:
            self._asgi.router.routes.insert(len(self._routes) - 1, route)

    # -- the ASGI application ------------------------------------------------------------

    @property
    def asgi(self) -> Starlette:
        """The worker's ASGI application: its views, the built-in pages, mounted apps."""
        if self._asgi is None:
            from .pages import builtin_routes

            conf = self.app.conf
            from .sensing import SensedRequests

            middleware = [Middleware(SensedRequests, fluvial_app=self.app),
                          Middleware(_BodyLimit, limit=conf.web_max_request_size)]
            if conf.web_cors_options:
                middleware.insert(0, Middleware(CORSMiddleware, **dict(conf.web_cors_options)))
            self._asgi = Starlette(
                routes=[*self._routes, *builtin_routes(self)],
                middleware=middleware,
                exception_handlers={HTTPException: _http_error},
            )
        return self._asgi

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Serve :attr:`asgi` on ``web_bind:web_port`` while in the block (yields its URL).

        The worker (``fluvial worker``, ``app.main()``) serves this way when
        ``web_enabled``; an app run with ``app.running()`` serves only if asked.
        """
        from .server import serve

        self.worker_loop = asyncio.get_running_loop()
        self.stopping = False
        try:
            async with serve(self.app.conf, self.asgi) as url:
                try:
                    yield url
                finally:
                    # Before the server stops: long-lived responses (the dashboard's
                    # event stream) end, so the server need not wait for them.
                    self.stopping = True
        finally:
            self.worker_loop = None
            await self.forwarder.close()


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path if path.startswith("/") else "/" + path
    return prefix.rstrip("/") + "/" + path.lstrip("/")


