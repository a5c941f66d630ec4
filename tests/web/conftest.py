"""Fixtures for web tests: free loopback ports, apps served by a real uvicorn."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

import fluvial as faust
from tests.app.conftest import broker_url, eventually, unique

__all__ = ["broker_url", "eventually", "free_port", "served", "unique", "web_app"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def served(app: faust.App) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app`` (its worker runtime and its web server); yield a client for it."""
    async with app.running(), app.web.serving() as url, \
            httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


def web_app(name: str, broker_url: str, **settings: object) -> faust.App:
    """An app whose web server listens on a free loopback port."""
    port = free_port()
    return faust.App(name, broker=broker_url, web_bind="127.0.0.1", web_host="127.0.0.1",
                     web_port=port, **settings)
