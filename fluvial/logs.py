"""Log formats of a worker: text lines, or one JSON object per line (``log_format='json'``).

A JSON line holds ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
``process``, and, when the record was logged while an agent processed an event,
that event's ``topic``, ``partition`` and ``offset``; ``exception`` holds the
traceback of a record logged with one. Fields passed with ``extra=`` are kept.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from .events import current_event

__all__ = ["TEXT_FORMAT", "JsonFormatter", "formatter_for"]

TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"

#: Attributes every LogRecord has: not copied into the JSON object as extras.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        event = current_event()
        if event is not None:
            message = event.message
            entry.update(topic=message.topic, partition=message.partition,
                         offset=message.offset)
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def formatter_for(log_format: str) -> logging.Formatter:
    """The formatter of a ``log_format`` setting value (``text`` or ``json``)."""
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)
