"""Events: a decoded message as a stream sees it, and the current-event context."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import msgspec

from .types import Headers, Message, RecordMetadata

if TYPE_CHECKING:
    import asyncio

    from .app import App
    from .channels import Channel

__all__ = ["Event", "current_event"]

_current_event: ContextVar[Event | None] = ContextVar("fluvial_current_event", default=None)


def current_event() -> Event | None:
    """The event the current agent is processing (``faust.current_event()``)."""
    return _current_event.get()


class Event(msgspec.Struct, eq=False):
    """A message whose key and value have been decoded with a topic's schema.

    ``Event(app, key, value, headers, message)``; ``headers`` None: the message's
    own (read only when asked for). A Struct for its C constructor: one is made
    per event and subscriber, at half the cost of a Python ``__init__``.
    """

    app: App
    key: Any
    value: Any
    _headers: Headers | None
    message: Message

    @property
    def headers(self) -> Headers:
        headers = self._headers
        return self.message.headers if headers is None else headers

    @headers.setter
    def headers(self, value: Headers) -> None:
        self._headers = value

    def ack(self) -> bool:
        """Mark this event processed by one stream; True when it was the last one."""
        return self.message.release()

    async def send(
        self,
        channel: str | Channel[Any],
        key: Any = None,
        value: Any = None,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | None = None,
        force: bool = False,
    ) -> asyncio.Future[RecordMetadata]:
        """Send a new message to ``channel``; key and value default to this event's."""
        target = self.app.resolve_channel(channel)
        return await target.send(
            key=self.key if key is None else key,
            value=self.value if value is None else value,
            partition=partition,
            timestamp=timestamp,
            headers=self.headers if headers is None else headers,
            force=force,
        )

    async def forward(
        self,
        channel: str | Channel[Any],
        key: Any = None,
        value: Any = None,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | None = None,
        force: bool = False,
    ) -> asyncio.Future[RecordMetadata]:
        """Forward the original message (Faust's ``Event.forward``)."""
        return await self.send(
            channel,
            key=key,
            value=value,
            partition=partition,
            timestamp=self.message.timestamp if timestamp is None else timestamp,
            headers=headers,
            force=force,
        )

    def __repr__(self) -> str:
        return f"<Event key={self.key!r} value={self.value!r} message={self.message!r}>"
