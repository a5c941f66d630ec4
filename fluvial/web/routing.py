"""Answering a request for a key on the worker that owns the key's partition.

``@app.table_route`` (and ``@app.topic_route``) wrap a view method: when
another worker owns the key, :class:`Forwarder` sends the request there
(httpx, one pooled client, ``web_forward_timeout``) and returns its answer
unchanged; otherwise the view runs here. A forwarded request carries
:data:`FORWARDED_BY`: a worker that receives one for a key it does not own
(its view of the group is stale, or the partition is moving) answers 503
instead of forwarding again. While the owner is unknown or unreachable the
answer is a 503 with ``Retry-After``, never a hang.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

import httpx
from starlette.responses import Response

from ..exceptions import SameNode
from .exceptions import ServiceUnavailable, ValidationError

if TYPE_CHECKING:
    from ..app import App
    from .base import Request, Web
    from .views import View

__all__ = ["FORWARDED_BY", "Forwarder", "table_route", "topic_route"]

logger = logging.getLogger(__name__)
# httpx logs every request at INFO: one line per forwarded request in the worker's log.
logging.getLogger("httpx").setLevel(logging.WARNING)

#: Header of a forwarded request: the URL of the worker that forwarded it.
FORWARDED_BY = "x-fluvial-forwarded-by"
#: Seconds a client should wait before asking again while ownership moves.
RETRY_AFTER_S = 1
#: Forwarded requests waiting for their answers at once (the pool's connections);
#: beyond, a request is answered 503 at once instead of queueing in the pool, whose
#: bookkeeping grows with its queue and would take the worker's loop from the agents.
MAX_IN_FLIGHT = 100
#: Seconds an idle pooled connection is kept: below the workers' own keep-alive
#: timeout (uvicorn's 5 s), so a forward never reuses a connection the other worker
#: is closing at that moment (a ReadError, answered 503).
KEEPALIVE_S = 2.0
#: Hop-by-hop headers, not passed on either way.
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length",
})


def unavailable(detail: str) -> ServiceUnavailable:
    return ServiceUnavailable(detail, retry_after=RETRY_AFTER_S)


class Forwarder:
    """Sends requests on to the worker owning a key (one pooled httpx client)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._client: httpx.AsyncClient | None = None
        self._in_flight = 0

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = self.app.conf.web_forward_timeout
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
                limits=httpx.Limits(max_connections=MAX_IN_FLIGHT,
                                    max_keepalive_connections=20,
                                    keepalive_expiry=KEEPALIVE_S),
            )
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def route(self, owner: str, what: str, request: Request) -> Response:
        """Forward ``request`` to ``owner``; raise :class:`SameNode` if that is this worker."""
        if owner == self.app.conf.canonical_url:
            raise SameNode(what)
        if request.headers.get(FORWARDED_BY):
            raise unavailable(f"{what} is not held here (forwarded by "
                              f"{request.headers[FORWARDED_BY]}; owner as this worker sees "
                              f"it: {owner}): ownership is moving")
        return await self.forward(owner, request)

    async def forward(self, owner: str, request: Request) -> Response:
        """Send ``request`` to ``owner``; its answer, or a 503 if it does not come."""
        if self._in_flight >= MAX_IN_FLIGHT:
            raise unavailable(f"{MAX_IN_FLIGHT} requests forwarded by this worker are "
                              "waiting for answers: try again shortly")
        self._in_flight += 1
        try:
            return await self._forward(owner, request)
        finally:
            self._in_flight -= 1

    async def _forward(self, owner: str, request: Request) -> Response:
        target = owner.rstrip("/") + request.url.path
        if request.url.query:
            target += "?" + request.url.query
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers[FORWARDED_BY] = self.app.conf.canonical_url
        try:
            answer = await self.client.request(request.method, target, headers=headers,
                                               content=await request.body())
        except httpx.HTTPError as exc:
            logger.warning("Forwarding %s %s to %s failed: %r", request.method,
                           request.url.path, owner, exc)
            raise unavailable(f"The worker owning this key ({owner}) did not answer: "
                              f"{type(exc).__name__}") from exc
        passed = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP
                  and k.lower() != "content-encoding"}
        return Response(answer.content, status_code=answer.status_code, headers=passed)


ViewMethod = Callable[..., Awaitable[Any]]


def _key_of(request: Request, *, query_param: str | None, match_info: str | None,
            exact_key: Any) -> Any:
    if exact_key is not None:
        return exact_key
    if match_info is not None:
        return request.match_info[match_info]
    assert query_param is not None
    try:
        return request.query[query_param]
    except KeyError:
        raise ValidationError(f"Missing query parameter {query_param!r}") from None


def _check(shard_param: str | None, query_param: str | None, match_info: str | None,
           exact_key: Any) -> str | None:
    query_param = query_param or shard_param
    given = [x is not None for x in (query_param, match_info, exact_key)]
    if sum(given) != 1:
        raise TypeError("Give exactly one of shard_param/query_param, match_info, exact_key")
    return query_param


def _routed(route: Callable[[Any, Web, Request], Awaitable[Response]],
            shard_param: str | None, query_param: str | None, match_info: str | None,
            exact_key: Any) -> Callable[[ViewMethod], ViewMethod]:
    """A decorator running a view method where ``route(key, web, request)`` says:
    it forwards the request, or raises :class:`SameNode` to run it here."""
    query_param = _check(shard_param, query_param, match_info, exact_key)

    def decorate(fun: ViewMethod) -> ViewMethod:
        @wraps(fun)
        async def routed(view: View, request: Request, *args: Any, **kwargs: Any) -> Any:
            key = _key_of(request, query_param=query_param, match_info=match_info,
                          exact_key=exact_key)
            try:
                return await route(key, view.web, request)
            except SameNode:
                return await fun(view, request, *args, **kwargs)
        return routed
    return decorate


def table_route(app: App, table: Any, shard_param: str | None = None, *,
                query_param: str | None = None, match_info: str | None = None,
                exact_key: Any = None) -> Callable[[ViewMethod], ViewMethod]:
    """Decorator of a view method: run it on the worker owning the key of ``table``."""
    name = table if isinstance(table, str) else table.name

    def route(key: Any, web: Web, request: Request) -> Awaitable[Response]:
        return app.router.route_req(name, key, web, request)
    return _routed(route, shard_param, query_param, match_info, exact_key)


def topic_route(app: App, topic: Any, shard_param: str | None = None, *,
                query_param: str | None = None, match_info: str | None = None,
                exact_key: Any = None) -> Callable[[ViewMethod], ViewMethod]:
    """Decorator of a view method: run it on the worker assigned the key's partition."""
    def route(key: Any, web: Web, request: Request) -> Awaitable[Response]:
        return app.router.route_topic_req(topic, key, web, request)
    return _routed(route, shard_param, query_param, match_info, exact_key)
