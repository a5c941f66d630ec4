"""Telling the app's sensors about the web requests the worker answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from ..app import App

__all__ = ["SensedRequests"]


class Answered:
    """What ``on_web_request_end`` gets as the response: its status code."""

    __slots__ = ("status_code",)

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class SensedRequests:
    """ASGI middleware: ``on_web_request_start/end`` around each HTTP request, while a
    sensor listens (``app.sensors.web``)."""

    def __init__(self, app: ASGIApp, fluvial_app: App) -> None:
        self.app = app
        self.fluvial_app = fluvial_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sensors = self.fluvial_app.sensors
        if scope["type"] != "http" or not sensors.web:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        states = sensors.on_web_request_start(self.fluvial_app, request)
        answered = Answered(500)

        async def sent(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered.status_code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            sensors.on_web_request_end(self.fluvial_app, request, answered, states)
