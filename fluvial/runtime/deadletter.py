"""The dead-letter topic: a message that cannot be decoded or processed, kept as it came.

The message's own key, value, headers and timestamp are sent as they are,
plus ``fluvial-error`` (what went wrong, at most :data:`MAX_ERROR_BYTES`
bytes), ``fluvial-source`` (``topic[partition]@offset``) and, for processing
errors, ``fluvial-agent``. Sending may fail (the producer refuses a message
larger than ``message.max.bytes``, the broker is gone); the caller then keeps
the message uncommitted and stops, so nothing is lost.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..exceptions import FluvialError

if TYPE_CHECKING:
    from ..app import App
    from ..types import Headers, Message

__all__ = ["MAX_ERROR_BYTES", "MAX_LOGGED_CHARS", "dead_letter", "position", "shorten"]

logger = logging.getLogger(__name__)

#: Largest ``fluvial-error`` header: an error text can quote a whole payload.
MAX_ERROR_BYTES = 8192

#: Largest error text in a log line.
MAX_LOGGED_CHARS = 1000


def position(message: Message) -> str:
    """``topic[partition]@offset``."""
    return f"{message.topic}[{message.partition}]@{message.offset}"


def shorten(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def _bounded(text: str) -> bytes:
    data = text.encode("utf-8", "replace")
    if len(data) <= MAX_ERROR_BYTES:
        return data
    note = f"… ({len(data)} bytes in all)".encode()
    cut = data[: MAX_ERROR_BYTES - len(note)].decode("utf-8", "ignore").encode()
    return cut + note


def dead_letter(app: App, message: Message, error: str,
                extra: Headers | None = None) -> FluvialError | None:
    """Send ``message`` to the app's dead-letter topic; the error if it cannot be sent."""
    topic = app.conf.dead_letter_topic_name
    headers = [
        *message.headers,
        ("fluvial-error", _bounded(error)),
        ("fluvial-source", position(message).encode()),
        *(extra or ()),
    ]
    try:
        app.producer.send_soon(topic, message.key, message.value, headers=headers,
                               timestamp=message.timestamp)
    except FluvialError as exc:
        return exc
    except Exception as exc:  # a transport's own refusal (size, buffer): same verdict
        return FluvialError(f"{type(exc).__name__}: {exc}")
    app.conductor.dead_lettered += 1
    return None
