"""JSON with Faust's rules (``faust.utils.json``): ``dumps`` returns ``str``.

Records become their representation (with the ``__faust`` key), datetimes
ISO 8601 (UTC as ``Z``), ``Decimal``/``UUID``/bytes strings, enums their
value, sets and deques lists, and objects with ``__json__()`` what it returns.
"""

from __future__ import annotations

import datetime
import enum
import json
import uuid
from collections import Counter, deque
from decimal import Decimal
from typing import Any

from fluvial.codecs import json_dumps, json_loads

__all__ = ["JSONEncoder", "dumps", "loads", "on_default", "str_to_decimal"]

#: Longest string :func:`str_to_decimal` converts.
DECIMAL_MAXLEN = 1000


def str_to_decimal(s: str | None, maxlen: int = DECIMAL_MAXLEN) -> Decimal | None:
    """``Decimal(s)``, refusing over-long strings and non-finite values (NaN, Inf)."""
    if s is None:
        return None
    if len(s) > maxlen:
        raise ValueError(f"string of length {len(s)} is longer than limit ({maxlen})")
    value = Decimal(s)
    if not value.is_finite():
        raise ValueError(f"Illegal value in decimal: {s!r}")
    return value


def on_default(o: Any) -> Any:
    """The JSON form of a value the standard encoder does not know."""
    if getattr(o, "__is_model__", False):
        return o._representation_shallow()
    if isinstance(o, (Decimal, uuid.UUID)):
        return str(o)
    if isinstance(o, bytes):
        return o.decode()
    if isinstance(o, Counter):
        return dict(o)
    if isinstance(o, (datetime.date, datetime.time)):
        if not isinstance(o, (datetime.datetime, datetime.time)):
            o = datetime.datetime(o.year, o.month, o.day)
        text = o.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(o, enum.Enum):
        return o.value
    if isinstance(o, (set, frozenset, deque)):
        return list(o)
    to_json = getattr(o, "__json__", None)
    if to_json is not None:
        return to_json()
    raise TypeError(f"JSON cannot serialize {type(o).__name__!r}: {o!r}")


class JSONEncoder(json.JSONEncoder):
    """:class:`json.JSONEncoder` with :func:`on_default` for the types it does not know."""

    def default(self, o: Any) -> Any:
        return on_default(o)


def dumps(obj: Any, **kwargs: Any) -> str:
    """Serialize ``obj`` to a JSON string (keyword arguments go to :func:`json.dumps`)."""
    if kwargs:
        return json.dumps(obj, cls=kwargs.pop("cls", JSONEncoder), **kwargs)
    return json_dumps(obj).decode()


def loads(s: str | bytes, **kwargs: Any) -> Any:
    """Deserialize a JSON string or bytes."""
    if kwargs:
        return json.loads(s, **kwargs)
    return json_loads(s)
