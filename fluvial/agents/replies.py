"""Request/reply for ``agent.ask()``: correlation by headers, replies on a reply topic."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from ..models import Record

if TYPE_CHECKING:
    from ..app import App
    from ..types import Headers

__all__ = ["REPLY_TO", "CORRELATION_ID", "ReplyConsumer", "ReqRepResponse"]

logger = logging.getLogger(__name__)

# The header names Faust uses with use_reply_headers=True.
REPLY_TO = "Faust-Ask-Reply-To"
CORRELATION_ID = "Faust-Ask-Correlation-Id"


class ReqRepResponse(Record, namespace="@ReqRepResponse"):
    """The reply an agent sends for one ``ask()``."""

    key: Any
    value: Any
    correlation_id: str


def reply_headers(headers: Headers) -> tuple[str, str] | None:
    """``(reply_to, correlation_id)`` when an event of ``headers`` is a request, else None."""
    reply_to = correlation_id = None
    for name, value in headers:
        if name == REPLY_TO:
            reply_to = value.decode()
        elif name == CORRELATION_ID:
            correlation_id = value.decode()
    if reply_to and correlation_id:
        return reply_to, correlation_id
    return None


class ReplyConsumer:
    """Reads this app's reply topic and resolves the futures of pending asks."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def topic_name(self) -> str:
        return self.app.conf.reply_to

    async def new_request(self) -> tuple[str, asyncio.Future[Any]]:
        """A correlation id and the future its reply resolves (the reply topic exists)."""
        if self._task is None:
            await self._start()
        correlation_id = uuid.uuid4().hex
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = fut
        return correlation_id, fut

    async def _start(self) -> None:
        topic = self.app.topic(self.topic_name, internal=True, partitions=1)
        # Declared before any request goes out: a reply to a topic that does not
        # exist yet would wait in the producer (and hold up its flush).
        await topic.maybe_declare()
        if self._task is None:
            stream = topic.stream()
            self._task = self.app.add_background_task(self._consume(stream), "reply-consumer")

    async def _consume(self, stream: Any) -> None:
        async for value in stream:
            correlation_id = _field(value, "correlation_id")
            fut = self._waiting.pop(correlation_id, None) if correlation_id else None
            if fut is None:
                logger.warning("Reply with unknown correlation id %r", correlation_id)
            elif not fut.done():
                fut.set_result(_field(value, "value"))

    def forget(self, correlation_id: str) -> None:
        self._waiting.pop(correlation_id, None)


def _field(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        return value.get(name)
    return getattr(value, name, None)
