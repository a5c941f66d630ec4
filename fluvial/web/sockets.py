"""Websockets: the app's own handlers (``@app.websocket``), and the live feed of table
changes (``/table/{name}/live/``).

A handler is ``async def handler(web, ws, **match_info)`` with ``ws`` a Starlette
:class:`~starlette.websockets.WebSocket`; it accepts the connection itself
(``await ws.accept()``). An exception in it is logged with its traceback, the
connection closed with 1011, and the worker runs on.

The live feed sends each committed change of a table (see
:mod:`fluvial.tables.changes`) to its clients as one JSON text message::

    {"table": "counts", "key": "alice", "value": 3, "deleted": false}

(``"window": [start, end]`` beside the key in a windowed table; a set table's
value is the list of its members). ``?key=a&key=b`` follows those keys only.
Each client has a queue of changes to send: the checkpoint that reports
changes only appends to the queues, never waits for a client. A client that
still has changes of an earlier checkpoint waiting when the queue would pass
``web_live_queue_size`` is too slow: it is disconnected (close code 1008) with
a warning in the log. (The changes of one checkpoint alone may be more: a
client that keeps up takes them.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json as _json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ..clock import wait_within
from ..codecs import json_dumps

if TYPE_CHECKING:
    from ..tables import Table, TableChange
    from .base import Web

__all__ = ["LiveClient", "LiveFeed", "WebSocketHandler", "live_route", "websocket_endpoint"]

logger = logging.getLogger(__name__)

#: Close code for a client too slow to keep up (RFC 6455: policy violation).
CLOSE_TOO_SLOW = 1008
#: Close code after a handler raised (RFC 6455: internal error).
CLOSE_HANDLER_FAILED = 1011
#: Seconds a close may wait for a slow client's buffers to drain before it is dropped.
CLOSE_TIMEOUT_S = 10.0

WebSocketHandler = Callable[..., Awaitable[None]]


def websocket_endpoint(web: Web, handler: WebSocketHandler
                       ) -> Callable[[WebSocket], Awaitable[None]]:
    """The Starlette endpoint that runs ``handler(web, ws, **match_info)``."""
    if not callable(handler):
        raise TypeError(f"A websocket handler must be an async function (web, ws, "
                        f"**match_info), not {handler!r}")

    async def endpoint(ws: WebSocket) -> None:
        try:
            await handler(web, ws, **ws.path_params)
        except WebSocketDisconnect:
            pass  # the client went away: nothing to report
        except Exception:
            logger.exception("Websocket handler %s failed on %s", _name(handler), ws.url.path)
            await _close(ws, CLOSE_HANDLER_FAILED, "handler error")

    endpoint.__name__ = _name(handler)
    return endpoint


def _name(handler: Any) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    """Close ``ws`` unless it is closed already; bounded, a client may not read at all."""
    if ws.client_state == WebSocketState.DISCONNECTED or \
            ws.application_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(Exception):  # already gone: nothing left to close
        await wait_within(ws.close(code, reason), CLOSE_TIMEOUT_S, abandon=True)


# -- the live feed ---------------------------------------------------------------------


class _Change:
    """A committed change, encoded at most once however many clients send it."""

    __slots__ = ("_text", "change")

    def __init__(self, change: TableChange) -> None:
        self.change = change
        self._text: str | None = None

    def text(self, windowed: bool) -> str:
        if self._text is None:
            change = self.change
            message: dict[str, Any] = {"table": change.table.name}
            if windowed:
                key, window = change.key
                message["key"], message["window"] = key, window
            else:
                message["key"] = change.key
            message["value"] = change.value
            message["deleted"] = change.deleted
            self._text = json_dumps(message).decode()
        return self._text


class LiveClient:
    """One websocket following a table: its key filter and its bounded queue."""

    def __init__(self, ws: WebSocket, table: Table, keys: set[Any] | None,
                 limit: int) -> None:
        self.ws = ws
        self.table = table
        self.keys = keys
        self.windowed = table.window is not None
        self.limit = limit
        self.queue: deque[_Change] = deque()
        self.ready = asyncio.Event()
        self.overflowed = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def offer(self, changes: Sequence[_Change]) -> None:
        """Queue the changes this client follows (in its loop; never waits)."""
        if self.overflowed.is_set():
            return
        keys = self.keys
        if keys is not None:
            changes = [c for c in changes if self._follows(c.change.key)]
            if not changes:
                return
        queue = self.queue
        if queue and len(queue) + len(changes) > self.limit:
            # Changes of an earlier checkpoint still wait (one checkpoint's changes
            # alone may be more than the limit: a client that keeps up takes them).
            queue.clear()
            self.overflowed.set()
            return
        queue.extend(changes)
        self.ready.set()

    def _follows(self, key: Any) -> bool:
        assert self.keys is not None
        if self.windowed and isinstance(key, tuple):
            key = key[0]
        try:
            return key in self.keys
        except TypeError:  # an unhashable key cannot be one of the filter's
            return False

    async def send_changes(self) -> None:
        """Send what is queued, as it comes."""
        queue, ws, windowed = self.queue, self.ws, self.windowed
        while True:
            await self.ready.wait()
            self.ready.clear()
            while queue:
                await ws.send_text(queue.popleft().text(windowed))


class LiveFeed:
    """The live feed's clients per table, and one committed-change listener per table
    that has clients (none at all without clients)."""

    def __init__(self, web: Web) -> None:
        self.web = web
        self._clients: dict[str, set[LiveClient]] = {}
        self._listeners: dict[str, Callable[[Sequence[TableChange]], None]] = {}
        #: Clients disconnected for being too slow, since start.
        self.too_slow = 0

    def clients(self, table: str) -> int:
        """How many clients follow ``table`` now."""
        return len(self._clients.get(table, ()))

    def attach(self, client: LiveClient) -> None:
        name = client.table.name
        clients = self._clients.setdefault(name, set())
        clients.add(client)
        if name not in self._listeners:
            listener = self._listener_for(clients)
            self._listeners[name] = listener
            client.table.on_committed_change(listener)

    def detach(self, client: LiveClient) -> None:
        name = client.table.name
        clients = self._clients.get(name)
        if clients is None:
            return
        clients.discard(client)
        if not clients:
            del self._clients[name]
            listener = self._listeners.pop(name, None)
            if listener is not None:
                client.table.remove_committed_change_listener(listener)

    @staticmethod
    def _listener_for(clients: set[LiveClient]) -> Callable[[Sequence[TableChange]], None]:
        def on_changes(changes: Sequence[TableChange]) -> None:
            # In the worker's loop, inside a checkpoint: only hand the changes over.
            wrapped = [_Change(change) for change in changes]
            here = _running_loop()
            for client in list(clients):
                if client.loop is here:
                    client.offer(wrapped)
                else:  # web_in_thread: the client lives in the server's loop
                    with contextlib.suppress(RuntimeError):  # closed: the server stopped
                        client.loop.call_soon_threadsafe(client.offer, wrapped)
        return on_changes

    async def serve(self, ws: WebSocket) -> None:
        """The live feed endpoint: ``/table/{name}/live/?key=...``."""
        app = self.web.app
        name = ws.path_params["name"]
        if name not in app.tables:
            await _deny(ws, 404, "Unknown table", table=name)
            return
        table = app.tables[name]
        keys = ws.query_params.getlist("key")
        client = LiveClient(ws, table, _key_filter(keys) if keys else None,
                            app.conf.web_live_queue_size)
        # Following before the client learns it is connected: no change is missed.
        self.attach(client)
        try:
            await ws.accept()
        except BaseException:
            self.detach(client)
            raise
        sender = asyncio.ensure_future(client.send_changes())
        receiver = asyncio.ensure_future(_until_disconnect(ws))
        overflow = asyncio.ensure_future(client.overflowed.wait())
        try:
            await asyncio.wait({sender, receiver, overflow},
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.detach(client)
            for task in (sender, receiver, overflow):
                task.cancel()
            await asyncio.gather(sender, receiver, overflow, return_exceptions=True)
        if overflow.done() and not overflow.cancelled():
            self.too_slow += 1
            logger.warning(
                "Live feed of table %r: client %s disconnected (close code %d), too slow: "
                "more than %d changes queued (web_live_queue_size)", name,
                _peer(ws), CLOSE_TOO_SLOW, client.limit)
            await _close(ws, CLOSE_TOO_SLOW, "too slow: changes queued over the limit")
        elif sender.done() and not sender.cancelled() and sender.exception() is not None:
            exc = sender.exception()
            if not isinstance(exc, WebSocketDisconnect):
                logger.warning("Live feed of table %r: sending to %s failed: %r", name,
                               _peer(ws), exc)
            await _close(ws, CLOSE_HANDLER_FAILED, "send failed")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _peer(ws: WebSocket) -> str:
    client = ws.client
    return f"{client.host}:{client.port}" if client is not None else "?"


async def _until_disconnect(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it disconnects."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return


def _key_filter(keys: list[str]) -> set[Any]:
    """The keys ``?key=`` names: each as a string, and as the number or boolean it
    spells in JSON (``?key=42`` follows the key 42 too)."""
    wanted: set[Any] = set()
    for key in keys:
        wanted.add(key)
        try:
            decoded = _json.loads(key)
        except ValueError:
            continue
        if isinstance(decoded, (int, float, bool)):
            wanted.add(decoded)
    return wanted


async def _deny(ws: WebSocket, status: int, error: str, **extra: Any) -> None:
    """Refuse the connection with an HTTP ``status`` and a JSON body, where the server
    can (else a close before accepting, which clients see as a 403)."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSONResponse({"error": error, **extra},
                                                   status_code=status))
    else:
        await ws.close(1008, f"{error}: {extra}")


def live_route(web: Web) -> WebSocketRoute:
    """The live feed's route, served with the table pages (``web_tables_enabled``)."""
    return WebSocketRoute("/table/{name}/live/", web.live.serve, name="table:live")

