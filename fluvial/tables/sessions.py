"""Session windows: per key, one window per burst of activity.

``app.Table('clicks', default=int).session(gap=30, expires=3600)`` counts per
*session*: events of a key less than ``gap`` seconds apart (event time) share
one window ``(first event, last event)``. An event extends the session it
falls into or next to, starts a new one, or bridges two sessions, which then
merge into one.

Storage is that of the other windowed tables: keys ``(key, (start, end))``,
changelog keys the JSON ``[key, [start, end]]``. A session that grows gets a
new key, so its old key is deleted (a tombstone in the changelog), as is every
session merged away. Merged values combine with ``merge(older, newer)``
(default :func:`operator.add`, right for counters, sums and lists), then the
event's own operation applies: ``table[k] += 1`` on sessions worth 2 and 3
gives 6. Pass ``merge=operator.or_`` for sets, ``merge=max`` for maxima, or
any function of two values for other types.

Accessors: ``.current()`` and ``.value()`` read the session containing the
event's time (per the table's relativity), ``.delta(d)`` the session
containing the time ``d`` seconds earlier, and ``.now()`` the session still
*active* at wall-clock now — the latest one whose gap has not elapsed
(``start <= now < end + gap``). A key without such a session reads as the
table's default.

Closing, grace, idle closing, expiry and late events are those of
:mod:`.windowed`, with a session closing at ``end + gap``: once the stream
time passes ``end + gap + grace`` no event can join it, and
``on_window_close((key, (start, end)), value)`` gets its final value, once.
Sessions merged away before closing are never reported. An event that would
join (or bridge into) a closed session is late: dropped, counted, and handed
to ``on_late_event``. After a restart the sessions are rebuilt from the keys
the table holds.
"""

from __future__ import annotations

import bisect
import functools
import operator
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..exceptions import ImproperlyConfigured
from .windowed import (
    WindowState,
    WindowWrapper,
    _PartitionWindows,
    _seconds_or_none,
    install_window,
)
from .windows import Seconds, SessionWindow, WindowRange, want_seconds

if TYPE_CHECKING:
    from .table import Table

__all__ = ["SessionState", "SessionWrapper", "use_session_window"]

Merge = Callable[[Any, Any], Any]


def use_session_window(table: Table, window: SessionWindow, *, merge: Merge = operator.add,
                       grace: Seconds = 0.0,
                       idle_timeout: Seconds | None = 60.0) -> SessionWrapper:
    """Turn ``table`` into a session-windowed table."""
    if table.use_partitioner:
        raise ImproperlyConfigured(
            f"Table {table.name!r}: session windows keep all sessions of a key in the "
            "partition of the events that update it; drop use_partitioner=True")
    install_window(table, window, SessionState(
        table, window, merge=merge, grace=want_seconds(grace),
        idle_timeout=_seconds_or_none(idle_timeout)))
    return SessionWrapper(table)


class SessionState(WindowState):
    """:class:`WindowState` plus an index of each key's sessions, per partition."""

    window: SessionWindow

    def __init__(self, table: Table, window: SessionWindow, *, merge: Merge, grace: float,
                 idle_timeout: float | None) -> None:
        super().__init__(table, window, grace=grace, idle_timeout=idle_timeout)
        self.merge = merge

    def _derive(self, partition: int) -> _PartitionWindows:
        part = super()._derive(partition)
        store = self.table.partition_data(partition)
        for key, window_range in store or ():
            part.sessions.setdefault(key, []).append(window_range)
        for ranges in part.sessions.values():
            ranges.sort()
        return part

    def sessions(self, partition: int, key: Any) -> list[WindowRange]:
        """The sessions of ``key`` in ``partition``, oldest first (do not modify)."""
        return self._partition(partition).sessions.get(key, [])

    def sessions_anywhere(self, key: Any) -> Iterator[WindowRange]:
        """The sessions of ``key`` in every partition held here (reads outside a stream)."""
        for partition in list(self.table._parts):
            yield from self.sessions(partition, key)

    def written(self, partition: int, key: Any, window_range: WindowRange) -> None:
        super().written(partition, key, window_range)
        ranges = self._partition(partition).sessions.setdefault(key, [])
        i = bisect.bisect_left(ranges, window_range)
        if i == len(ranges) or ranges[i] != window_range:
            ranges.insert(i, window_range)

    def removed(self, partition: int, key: Any, window_range: WindowRange) -> None:
        """``(key, window_range)`` was merged away or deleted before it closed."""
        part = self._partition(partition)
        keys = part.open_keys.get(window_range)
        if keys is not None:
            keys.discard(key)  # its heap entry closes nothing now
        self._unindex(part, key, window_range)

    def _expired(self, part: _PartitionWindows, key: Any, window_range: WindowRange) -> None:
        self._unindex(part, key, window_range)

    @staticmethod
    def _unindex(part: _PartitionWindows, key: Any, window_range: WindowRange) -> None:
        ranges = part.sessions.get(key)
        if ranges is None:
            return
        if window_range in ranges:
            ranges.remove(window_range)
        if not ranges:
            del part.sessions[key]


class SessionWrapper(WindowWrapper):
    """What ``table.session(gap)`` returns: ``WindowWrapper`` with sessions that merge."""

    @property
    def state(self) -> SessionState:
        state = super().state
        if not isinstance(state, SessionState):  # pragma: no cover - use_session_window
            raise ImproperlyConfigured(f"Table {self.table.name!r} has no session windows")
        return state

    @property
    def window(self) -> SessionWindow:
        return self.state.window

    def _update(self, key: Any, timestamp: float, value: Any,
                fn: Callable[[Any], Any]) -> None:
        table = self.table
        state = self.state
        window = state.window
        alone = window.current(timestamp)
        partition = table._partition_for_write((key, alone))
        state.observe(partition, timestamp)
        touched = [r for r in state.sessions(partition, key) if window.joins(r, timestamp)]
        closed = [r for r in touched if state.is_closed(partition, r)]
        if closed or state.is_closed(partition, alone):
            state.late(key, closed[0] if closed else alone, value)
            return
        session = (min([timestamp, *(r[0] for r in touched)]),
                   max([timestamp, *(r[1] for r in touched)]))
        store = table._writable(partition)
        if store is None:
            return  # the partition is another worker's now
        missing = object()
        found = [store.get((key, r), missing) for r in touched]
        values = [v for v in found if v is not missing]
        old = (functools.reduce(state.merge, values) if values
               else table.__missing__((key, session)))
        for window_range in touched:
            if window_range != session:
                if (key, window_range) in store:
                    table._del_in(partition, (key, window_range))
                state.removed(partition, key, window_range)
        table._set_in(partition, (key, session), fn(old))
        state.written(partition, key, session)

    def _range_at(self, key: Any, timestamp: float) -> WindowRange | None:
        for start, end in self.state.sessions_anywhere(key):
            if start <= timestamp <= end:
                return (start, end)
        return None

    def _range_now(self, key: Any, now: float) -> WindowRange | None:
        gap = self.window.gap
        active = [r for r in self.state.sessions_anywhere(key) if r[0] <= now < r[1] + gap]
        return max(active) if active else None

    def __delitem__(self, key: Any) -> None:
        """Delete ``key``'s session containing the event's time (if any)."""
        window_range = self._range_at(key, self.get_timestamp())
        if window_range is None:
            return
        table = self.table
        partition = table._partition_for_write((key, window_range))
        table._del_in(partition, (key, window_range))
        self.state.removed(partition, key, window_range)

    def __repr__(self) -> str:
        return f"<SessionWrapper {self.table.name}: {self.window!r}>"
