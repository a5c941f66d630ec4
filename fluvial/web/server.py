"""Serving an ASGI application with uvicorn inside the worker's event loop.

The listening socket is bound before anything else starts, so a port in use
fails the worker's start-up at once with a message that says what to change.
uvicorn's own signal handling is not used: the worker owns SIGINT/SIGTERM.
With ``web_in_thread`` the server runs on an event loop of its own in a
thread (views then run beside the worker, not in its loop).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import uvicorn
from starlette.types import ASGIApp

from ..exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["WebServer", "bind", "serve"]

logger = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; a clear error when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets whose
    # proto says TCP, and without it a keep-alive client waits 40 ms per answer
    # (Nagle's algorithm against the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ImproperlyConfigured(
                f"The web server cannot listen on {host}:{port}: the port is in use. Give "
                "this worker another port (web_port, --web-port), or run it without the web "
                "server (web_enabled=False, --without-web)") from exc
        raise ImproperlyConfigured(
            f"The web server cannot listen on {host}:{port}: {exc.strerror} "
            "(check web_bind / --web-bind and web_port / --web-port)") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class WebServer:
    """uvicorn serving ``asgi`` on an already bound socket, started and stopped by us."""

    def __init__(self, asgi: ASGIApp, sock: socket.socket) -> None:
        config = uvicorn.Config(asgi, lifespan="off", log_level="warning",
                                access_log=False, timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._sock = sock
        self._main: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # What ``uvicorn.Server.serve`` does, less its signal handlers: the worker owns those.
        config = self._server.config
        if not config.loaded:
            config.load()
        self._server.lifespan = config.lifespan_class(config)
        await self._server.startup(sockets=[self._sock])
        self._main = asyncio.ensure_future(self._server.main_loop())

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._main is not None:
            await self._main
        await self._server.shutdown(sockets=[self._sock])
        self._sock.close()


@asynccontextmanager
async def serve(conf: Settings, asgi: ASGIApp) -> AsyncIterator[str]:
    """Serve ``asgi`` on ``web_bind:web_port`` while in the block; yields the local URL."""
    sock = bind(conf.web_bind, conf.web_port)
    host, port = sock.getsockname()[:2]
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    if conf.web_in_thread:
        async with _in_thread(asgi, sock):
            logger.info("Web server on %s (in its own thread), advertised as %s", url,
                        conf.canonical_url)
            yield url
        return
    server = WebServer(asgi, sock)
    await server.start()
    logger.info("Web server on %s, advertised as %s", url, conf.canonical_url)
    try:
        yield url
    finally:
        await server.stop()


@asynccontextmanager
async def _in_thread(asgi: ASGIApp, sock: socket.socket) -> AsyncIterator[None]:
    loop = asyncio.new_event_loop()
    server = WebServer(asgi, sock)
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:
            failure.append(exc)
            return
        finally:
            started.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=run, name="fluvial-web", daemon=True)
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, started.wait)
    if failure:
        raise failure[0]
    try:
        yield
    finally:
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.get_running_loop().run_in_executor(None, thread.join, 10)
