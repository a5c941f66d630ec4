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

__all__ = ["Current", "Event", "current_event", "current_message", "event_of"]

#: What the running task's stream is on (see :class:`Current`).
_current_event: ContextVar[Current | None] = ContextVar("fluvial_current_event", default=None)


def current_event() -> Event | None:
    """The event the current agent is processing (``faust.current_event()``)."""
    current = _current_event.get()
    return None if current is None else current.event()


class Current:
    """The message a stream has in hand, for ``current_event()`` and table writes.

    One per stream, put in the task's context when the stream hands out an
    event. Streams queue messages, not events: the :class:`Event` of the
    message in hand is made the first time somebody asks for it, and kept
    here (asking again gives the same object). Not on the message: an event
    and its message pointing at each other would be garbage only the cyclic
    collector frees (measured: a third slower per event).
    """

    __slots__ = ("_event", "app", "message")

    def __init__(self, app: App, message: Message | None = None) -> None:
        self.app = app
        #: The message being processed (``None`` before the first one).
        self.message = message
        self._event: Event | None = None

    def event(self) -> Event | None:
        message = self.message
        return None if message is None else self.event_of(message)

    def event_of(self, message: Message) -> Event:
        """The event of ``message``, the one in hand (made once)."""
        event = self._event
        if event is None or event.message is not message:
            event = self._event = event_of(self.app, message)
        return event


def current_message() -> Message | None:
    """The message of the event the current agent is processing (no Event made)."""
    current = _current_event.get()
    return None if current is None else current.message


def event_of(app: App, message: Message) -> Event:
    """A new event of a queued ``message``, or the one it was queued with
    (``message.event``: ``Channel.put`` of an event built by the caller)."""
    event: Event | None = message.event
    if event is None:
        event = Event(app, message.decoded_key, message.decoded_value, None, message)
    return event


class Event(msgspec.Struct, eq=False):
    """A message whose key and value have been decoded with a topic's schema.

    ``Event(app, key, value, headers, message)``; ``headers`` None: the message's
    own (read only when asked for). Made only when user code asks for it
    (:func:`event_of`): streams queue the messages themselves.
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
