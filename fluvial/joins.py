"""Joins: a stream with a table, or two streams within a time window.

``stream.join(table)`` (inner) and ``stream.left_join(table)`` yield
``(value, row)``, where ``row`` is the table's current value for the event's
key (or for ``key(value)``), read when the event is processed. The stream
and the table must be co-partitioned — checked when the worker starts.

``orders.join(payments, within=60)`` (inner), ``left_join`` and
``outer_join`` pair values of two co-partitioned streams with the same key
whose timestamps are at most ``within`` seconds apart, yielding
``(left, right)``. A value with no partner yet is yielded with ``None`` on
the other side at once (left: left values; outer: both sides); partners
found later are yielded as pairs too. The join windows are held in memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from .buffers import EventBuffer
from .events import Event, current_event
from .exceptions import ImproperlyConfigured
from .streams import Stream
from .types import SharedMessage

if TYPE_CHECKING:
    from .tables import Table

__all__ = ["join"]

_MISSING = object()


def join(stream: Stream[Any], other: Any, how: str, *, key: Any = None,
         within: float | None = None) -> Stream[Any]:
    from .tables import Table

    if isinstance(other, Table):
        if how == "outer":
            raise ImproperlyConfigured("A table join is inner or left, not outer")
        if within is not None:
            raise ImproperlyConfigured("within= applies to stream-stream joins only")
        return _table_join(stream, other, how, _key_of(key))
    if isinstance(other, Stream):
        if within is None or within <= 0:
            raise ImproperlyConfigured("A stream-stream join needs within= (seconds) > 0")
        return _stream_join(stream, other, how, _key_of(key), within)
    raise ImproperlyConfigured(
        f"join() takes a Table or a Stream, not {other!r} (Faust's field joins are "
        "expressed as group_by on the field, then a join)"
    )


def _key_of(key: Any) -> Callable[[Event], Any]:
    if key is None:
        return lambda event: event.key
    getter = getattr(key, "getattr", None) or key
    if not callable(getter):
        raise ImproperlyConfigured(f"join key must be a model field or a function, not {key!r}")
    return lambda event: getter(event.value)


def _table_join(stream: Stream[Any], table: Table, how: str,
                key_of: Callable[[Event], Any]) -> Stream[Any]:
    stream.app.require_copartitioned(stream.channel, table)
    inner = how == "inner"

    def lookup(value: Any) -> Any:
        event = current_event()
        assert event is not None  # steps run with the event in hand
        k = key_of(event)
        row = table[k] if k in table else None  # noqa: SIM401 - .get() would give the default
        if inner and row is None:
            return _MISSING
        return (value, row)

    joined = stream._derive(steps=(*stream._steps, ("map", lookup, False)))
    return joined.filter(lambda pair: pair is not _MISSING)


class _Side:
    """One side of a stream-stream join: recent events per key, oldest first."""

    def __init__(self) -> None:
        self.by_key: dict[Any, deque[tuple[float, Any, list[bool]]]] = {}

    def add(self, k: Any, ts: float, value: Any) -> list[bool]:
        matched = [False]
        self.by_key.setdefault(k, deque()).append((ts, value, matched))
        return matched

    def partners(self, k: Any, ts: float, within: float) -> list[tuple[Any, list[bool]]]:
        return [(v, m) for t, v, m in self.by_key.get(k, ()) if abs(t - ts) <= within]

    def expire(self, before: float) -> None:
        for k in list(self.by_key):
            entries = self.by_key[k]
            while entries and entries[0][0] < before:
                entries.popleft()
            if not entries:
                del self.by_key[k]


def _stream_join(left: Stream[Any], right: Stream[Any], how: str,
                 key_of: Callable[[Event], Any], within: float) -> Stream[Any]:
    left.app.require_copartitioned(left.channel, right.channel)
    merged = EventBuffer(left.buffer.maxsize)
    sides: dict[int, int] = {}

    def feeder(source: Stream[Any], side: int) -> Callable[[], Any]:
        async def feed() -> None:
            # The events move on as they are: the joined stream acknowledges them.
            async for message in source.noack()._messages():
                while len(merged) >= merged.maxsize:  # back-pressure from the join
                    await asyncio.sleep(0.001)
                # A copy: both sides may read the same messages (their own ids).
                copy = SharedMessage(message)
                copy.decoded_key = message.decoded_key
                copy.decoded_value = message.decoded_value
                sides[id(copy)] = side
                merged.put(copy)
        return feed

    state = (_Side(), _Side())
    emit_unmatched = (how in ("left", "outer"), how == "outer")

    async def pairs(events: AsyncIterator[Event]) -> AsyncIterator[tuple[Any, Any]]:
        latest = float("-inf")
        async for event in events:
            side = sides.pop(id(event.message))
            ts = event.message.timestamp
            k = key_of(event)
            mine, theirs = state[side], state[1 - side]
            matched = mine.add(k, ts, event.value)
            found = theirs.partners(k, ts, within)
            for value, their_flag in found:
                their_flag[0] = True
                matched[0] = True
                yield (event.value, value) if side == 0 else (value, event.value)
            if not found and emit_unmatched[side]:
                yield (event.value, None) if side == 0 else (None, event.value)
            latest = max(latest, ts)
            if len(mine.by_key) + len(theirs.by_key) > 1024:
                mine.expire(latest - within)
                theirs.expire(latest - within)

    return _JoinedStream(
        left.channel, app=left.app, buffer=merged,
        companions=(feeder(left, 0), feeder(right, 1)), pairs=pairs,
    )


class _JoinedStream(Stream[Any]):
    """Iterates ``(left, right)`` pairs built from the merged events of both sides."""

    def __init__(self, *args: Any,
                 pairs: Callable[[AsyncIterator[Event]], AsyncIterator[tuple[Any, Any]]],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pairs = pairs

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._pairs(self.events())
