"""Windowed tables: Faust's ``WindowWrapper``/``WindowSet`` API, and windows that close.

``app.Table('views', default=int).tumbling(60, expires=3600)`` keeps one value
per (key, window). As in Faust, the underlying table's keys are
``(key, (start, end))`` — the changelog key is the JSON ``[key, [start, end]]``
— and writes take the normal path (dirty set, changelog at the checkpoint) in
the partition of the event being processed.

Closing is event-time: each partition has a *stream time*, the largest
timestamp a write has used there. A window closes once the stream time passes
its end plus ``grace``; ``on_window_close((key, window), value)`` then gets its
final value, once. A partition that sees no write for ``idle_timeout`` seconds
of wall-clock time (the app's clock) lets its stream time run on with the wall
clock from its last event, so the last window of an idle partition still
closes. A closed window is deleted (tombstones in the changelog) once the
stream time passes its end plus ``expires`` (never if ``expires`` is None).
Writes into a closed window are late: they are dropped, counted in
``late_events`` and handed to ``on_late_event((key, window), value)``.

None of this state is stored apart from the table: after a restart or a
rebalance, a partition's stream time is derived from the windows it holds
(the latest window start, a lower bound of the stream time before), so
expiry resumes where it was. Windows closed only by the idle rule before a
crash may be closed (and reported) again afterwards.
"""

from __future__ import annotations

import heapq
import inspect
import logging
import operator
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from ..events import Event, current_event
from ..exceptions import ImproperlyConfigured, TableError
from ..models import FieldDescriptor
from .windows import Seconds, Window, WindowRange, want_seconds

if TYPE_CHECKING:
    from .changes import ChangeListener
    from .table import Table

__all__ = ["WindowSet", "WindowState", "WindowWrapper", "use_window"]

logger = logging.getLogger(__name__)

_MISSING = object()

RelativeHandler = Callable[[Event | None], "float | datetime"]


def use_window(table: Table, window: Window, *, grace: Seconds = 0.0,
               idle_timeout: Seconds | None = 60.0) -> WindowWrapper:
    """Turn ``table`` into a windowed table (Faust mutates the table the same way)."""
    install_window(table, window, WindowState(table, window, grace=want_seconds(grace),
                                              idle_timeout=_seconds_or_none(idle_timeout)))
    return WindowWrapper(table)


def _seconds_or_none(value: Seconds | None) -> float | None:
    return None if value is None else want_seconds(value)


def install_window(table: Table, window: Window, state: WindowState) -> None:
    """Make ``table`` windowed by ``window``, closed and expired by ``state``."""
    if table._windowing is not None:
        raise ImproperlyConfigured(f"Table {table.name!r} is already windowed")
    if table._parts:
        raise ImproperlyConfigured(
            f"Table {table.name!r} already holds data: make it windowed where it is declared")
    table.window = window
    topic = table.changelog_topic
    # Faust's windowed changelogs compact and delete, keeping ``expires``.
    topic.deleting = True
    if window.expires is not None and topic.retention is None:
        topic.retention = window.expires
    table.decode_key = _windowed_key_decoder(table.key_type)
    table._windowing = state
    if state.idle_timeout is not None:
        table.app.timer(min(state.idle_timeout, 1.0))(state.tick)


def _windowed_key_decoder(key_type: Any) -> Callable[[bytes | None], Any]:
    """JSON ``[key, [start, end]]`` back into the hashable ``(key, (start, end))``."""
    from_data = getattr(key_type, "from_data", None)

    def decode(data: bytes | None) -> Any:
        if data is None:
            return None
        decoded = msgspec.json.decode(data)
        if not isinstance(decoded, list) or len(decoded) != 2:
            raise TableError(f"Not a windowed table key: {data!r}")
        key, (start, end) = decoded
        if from_data is not None and isinstance(key, dict):
            key = from_data(key)
        elif isinstance(key, list):
            key = tuple(key)
        return (key, (float(start), float(end)))

    return decode


# -- closing and expiry ----------------------------------------------------------


class _PartitionWindows:
    """Stream time and the open and closed windows of one table partition."""

    __slots__ = ("closed", "expiring", "idle_base", "last_write_at", "open", "open_keys",
                 "sessions", "stream_time")

    def __init__(self, now: float) -> None:
        self.stream_time = float("-inf")
        #: Stream time at the last write and the wall-clock time of it (idle rule).
        self.idle_base = float("-inf")
        self.last_write_at = now
        self.open: list[tuple[float, WindowRange]] = []  # heap by closing time
        self.open_keys: dict[WindowRange, set[Any]] = {}
        self.expiring: list[tuple[float, WindowRange]] = []  # heap by expiry time
        self.closed: dict[WindowRange, set[Any]] = {}
        #: Session windows only: each key's sessions (open and closed), oldest first.
        self.sessions: dict[Any, list[WindowRange]] = {}


class WindowState:
    """Closes and expires the windows of one windowed table, per partition."""

    def __init__(self, table: Table, window: Window, *, grace: float,
                 idle_timeout: float | None) -> None:
        self.table = table
        self.window = window
        self.grace = grace
        self.idle_timeout = idle_timeout
        self._parts: dict[int, _PartitionWindows] = {}
        #: Writes dropped because their window had closed.
        self.late_events = 0
        #: Windows handed to ``on_window_close`` (or closed without a callback).
        self.closed_windows = 0

    def stream_time(self, partition: int) -> float:
        return self._partition(partition).stream_time

    def forget(self, partition: int) -> None:
        """The partition's data changed under us (recovery) or left: derive it again."""
        self._parts.pop(partition, None)

    def is_closed(self, partition: int, window_range: WindowRange) -> bool:
        part = self._partition(partition)
        return self.window.closes_at(window_range) + self.grace < part.stream_time

    def _partition(self, partition: int) -> _PartitionWindows:
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = self._derive(partition)
        return part

    def _derive(self, partition: int) -> _PartitionWindows:
        """Rebuild a partition's windows from the keys it holds (after a restore)."""
        window = self.window
        part = _PartitionWindows(self.table.app.clock.time())
        store = self.table.partition_data(partition)
        if not store:
            return part
        by_range: dict[WindowRange, set[Any]] = {}
        for full_key in store:
            key, window_range = full_key
            by_range.setdefault(window_range, set()).add(key)
        part.stream_time = part.idle_base = max(window.stream_time_floor(r) for r in by_range)
        for window_range, keys in by_range.items():
            closes_at = window.closes_at(window_range)
            if closes_at + self.grace < part.stream_time:
                self._track_closed(part, window_range, keys)  # reported before the restart
            else:
                heapq.heappush(part.open, (closes_at, window_range))
                part.open_keys[window_range] = keys
        return part

    def written(self, partition: int, key: Any, window_range: WindowRange) -> None:
        part = self._partition(partition)
        keys = part.open_keys.get(window_range)
        if keys is None:
            keys = part.open_keys[window_range] = set()
            heapq.heappush(part.open, (self.window.closes_at(window_range), window_range))
        keys.add(key)

    def observe(self, partition: int, timestamp: float) -> None:
        """A write at event time ``timestamp``: move stream time, close and expire windows."""
        part = self._partition(partition)
        part.last_write_at = self.table.app.clock.time()
        if timestamp > part.stream_time:
            part.stream_time = timestamp
        part.idle_base = part.stream_time
        self._close_due(partition, part)

    def tick(self) -> None:
        """Timer: partitions idle for ``idle_timeout`` follow the wall clock."""
        idle_timeout = self.idle_timeout
        if idle_timeout is None:
            return
        now = self.table.app.clock.time()
        for partition in list(self.table._parts):
            part = self._partition(partition)
            idle_for = now - part.last_write_at
            if idle_for >= idle_timeout and part.idle_base != float("-inf"):
                part.stream_time = max(part.stream_time, part.idle_base + idle_for)
                self._close_due(partition, part)

    def _close_due(self, partition: int, part: _PartitionWindows) -> None:
        window = self.window
        limit = part.stream_time - self.grace
        store = self.table.partition_data(partition)
        callback = self.table._on_window_close
        while part.open and part.open[0][0] < limit:
            _, window_range = heapq.heappop(part.open)
            keys = part.open_keys.pop(window_range, set())
            self.closed_windows += len(keys)
            if callback is not None and store is not None:
                for key in sorted(keys, key=repr):
                    value = store.get((key, window_range), _MISSING)
                    if value is not _MISSING:
                        self._call(callback, (key, window_range), value)
            self._track_closed(part, window_range, keys)
        expires = window.expires
        if expires is None:
            return
        while part.expiring and part.expiring[0][0] < part.stream_time:
            _, window_range = heapq.heappop(part.expiring)
            for key in part.closed.pop(window_range, set()):
                if store is not None and (key, window_range) in store:
                    self.table._del_in(partition, (key, window_range))
                self._expired(part, key, window_range)

    def _expired(self, part: _PartitionWindows, key: Any, window_range: WindowRange) -> None:
        """Hook: ``(key, window_range)`` was deleted for good."""

    def _track_closed(self, part: _PartitionWindows, window_range: WindowRange,
                      keys: set[Any]) -> None:
        expires = self.window.expires
        if expires is None or not keys:
            return  # kept for ever, as Faust keeps windows without ``expires``
        closed = part.closed.get(window_range)
        if closed is None:
            part.closed[window_range] = set(keys)
            expire_at = self.window.closes_at(window_range) + max(expires, self.grace)
            heapq.heappush(part.expiring, (expire_at, window_range))
        else:
            closed |= keys

    def late(self, key: Any, window_range: WindowRange, value: Any) -> None:
        self.late_events += 1
        callback = self.table._on_late_event
        if callback is not None:
            self._call(callback, (key, window_range), value)

    def _call(self, callback: Callable[[Any, Any], Any], key: Any, value: Any) -> None:
        result = callback(key, value)
        if inspect.isawaitable(result):
            # A coroutine callback runs as a task of the worker: a crash is loud.
            self.table.app.add_background_task(_wait(result), f"{self.table.name}:window")


async def _wait(awaitable: Awaitable[Any]) -> None:
    await awaitable


# -- the Faust API ------------------------------------------------------------------


class WindowSet:
    """``table[key]`` of a windowed table: the key's value in one window or another.

    ``table[key] += 1`` updates every window holding the event's time;
    ``.current()``, ``.value()``, ``.now()`` and ``.delta(d)`` read one window.
    """

    __slots__ = ("event", "key", "table", "wrapper")

    def __init__(self, key: Any, table: Table, wrapper: WindowWrapper,
                 event: Event | None = None) -> None:
        self.key = key
        self.table = table
        self.wrapper = wrapper
        self.event = event

    def apply(self, op: Callable[[Any, Any], Any], value: Any,
              event: Event | None = None) -> WindowSet:
        """Apply ``op(old, value)`` in every window the event's timestamp falls into."""
        timestamp = self.wrapper.get_timestamp(event or self.event)
        self.wrapper._update(self.key, timestamp, value, lambda old: op(old, value))
        return self

    def value(self, event: Event | None = None) -> Any:
        """The value in the window per the table's time relativity."""
        timestamp = self.wrapper.get_timestamp(event or self.event)
        return self._read(self.wrapper._range_at(self.key, timestamp))

    def current(self, event: Event | None = None) -> Any:
        """The value in the window of the event's message timestamp."""
        return self._read(self.wrapper._range_at(self.key, _event_time(event or self.event)))

    def now(self) -> Any:
        """The value in the window of wall-clock now (the app's clock)."""
        return self._read(self.wrapper._range_now(self.key, self.table.app.clock.time()))

    def delta(self, d: Seconds, event: Event | None = None) -> Any:
        """The value in the window ``d`` seconds before the event's message timestamp."""
        timestamp = _event_time(event or self.event) - want_seconds(d)
        return self._read(self.wrapper._range_at(self.key, timestamp))

    def _read(self, window_range: WindowRange | None) -> Any:
        if window_range is None:
            return self.table.__missing__(self.key)
        return self.table[self.key, window_range]

    def __getitem__(self, w: Any) -> Any:
        if isinstance(w, Event):
            return type(self)(self.key, self.table, self.wrapper, w)
        return self.table[self.key, w]

    def __setitem__(self, w: Any, value: Any) -> None:
        if isinstance(w, Event):
            raise NotImplementedError("Cannot set a WindowSet item keyed by an event")
        self.table[self.key, w] = value
        self.wrapper._written(self.key, w)

    def __delitem__(self, w: Any) -> None:
        if isinstance(w, Event):
            raise NotImplementedError("Cannot delete a WindowSet item keyed by an event")
        del self.table[self.key, w]

    def __iadd__(self, other: Any) -> WindowSet:
        return self.apply(operator.add, other)

    def __isub__(self, other: Any) -> WindowSet:
        return self.apply(operator.sub, other)

    def __imul__(self, other: Any) -> WindowSet:
        return self.apply(operator.mul, other)

    def __itruediv__(self, other: Any) -> WindowSet:
        return self.apply(operator.truediv, other)

    def __ifloordiv__(self, other: Any) -> WindowSet:
        return self.apply(operator.floordiv, other)

    def __imod__(self, other: Any) -> WindowSet:
        return self.apply(operator.mod, other)

    def __ipow__(self, other: Any) -> WindowSet:
        return self.apply(operator.pow, other)

    def __ilshift__(self, other: Any) -> WindowSet:
        return self.apply(operator.lshift, other)

    def __irshift__(self, other: Any) -> WindowSet:
        return self.apply(operator.rshift, other)

    def __iand__(self, other: Any) -> WindowSet:
        return self.apply(operator.and_, other)

    def __ixor__(self, other: Any) -> WindowSet:
        return self.apply(operator.xor, other)

    def __ior__(self, other: Any) -> WindowSet:
        return self.apply(operator.or_, other)

    def __repr__(self) -> str:
        return f"<WindowSet {self.key!r} of {self.table.name}>"


class WindowWrapper:
    """What ``table.tumbling()``/``hopping()``/``sliding()`` return (Faust's name)."""

    def __init__(self, table: Table, *, relative_to: Any = None) -> None:
        self.table = table
        self.get_relative_timestamp = self._relative_handler(relative_to)

    def __repr__(self) -> str:
        return f"<WindowWrapper {self.table.name}: {self.table.window!r}>"

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def window(self) -> Window:
        return _window_of(self.table)

    @property
    def state(self) -> WindowState:
        state = self.table._windowing
        if state is None:  # pragma: no cover - use_window sets it
            raise TableError(f"Table {self.table.name!r} is not windowed")
        return state

    @property
    def late_events(self) -> int:
        """How many writes came too late for their (closed) window."""
        return self.state.late_events

    def on_committed_change(self, listener: ChangeListener) -> ChangeListener:
        """The table's committed changes, one per (key, window): see
        :meth:`Table.on_committed_change <fluvial.tables.Table.on_committed_change>`."""
        return self.table.on_committed_change(listener)

    def remove_committed_change_listener(self, listener: ChangeListener) -> None:
        self.table.remove_committed_change_listener(listener)

    # -- time relativity ------------------------------------------------------------

    def clone(self, relative_to: Any) -> WindowWrapper:
        return type(self)(self.table, relative_to=relative_to or self.get_relative_timestamp)

    def relative_to(self, ts: Any) -> WindowWrapper:
        """Windows per ``ts``: a callable of the event, a field, a datetime or a float."""
        return self.clone(ts)

    def relative_to_now(self) -> WindowWrapper:
        """Windows per wall-clock time (the app's clock)."""
        clock = self.table.app.clock

        def wall_clock(event: Event | None = None) -> float:
            return clock.time()

        return self.clone(wall_clock)

    def relative_to_stream(self) -> WindowWrapper:
        """Windows per the message timestamp of the event being processed (the default)."""
        return self.clone(_event_time)

    def relative_to_field(self, field: Any) -> WindowWrapper:
        """Windows per a field of the event's value (``relative_to_field(Order.created)``)."""
        if not isinstance(field, FieldDescriptor):
            raise ImproperlyConfigured(
                f"relative_to_field takes a model field (Order.created), not {field!r}")
        return self.clone(field)

    def _relative_handler(self, relative_to: Any) -> RelativeHandler | None:
        if relative_to is None:
            return None
        if isinstance(relative_to, (datetime, int, float)):
            fixed = (relative_to.timestamp() if isinstance(relative_to, datetime)
                     else float(relative_to))

            def at_fixed_time(event: Event | None = None) -> float:
                return fixed

            return at_fixed_time
        if isinstance(relative_to, FieldDescriptor):
            field = relative_to

            def from_field(event: Event | None = None) -> float | datetime:
                if event is None:
                    raise TableError("relative_to_field needs an event: use it in a stream")
                value: float | datetime = field.getattr(event.value)
                return value

            return from_field
        if callable(relative_to):
            handler: RelativeHandler = relative_to
            return handler
        raise ImproperlyConfigured(f"Cannot take window time from {type(relative_to)}")

    def get_timestamp(self, event: Event | None = None) -> float:
        """The time windows are chosen by, for ``event`` (default: the current event)."""
        event = event or current_event()
        handler = self.get_relative_timestamp
        if handler is None:
            return _event_time(event)
        timestamp = handler(event)
        if isinstance(timestamp, datetime):
            return timestamp.timestamp()
        return float(timestamp)

    # -- writes ---------------------------------------------------------------------

    def _update(self, key: Any, timestamp: float, value: Any,
                fn: Callable[[Any], Any]) -> None:
        table = self.table
        state = self.state
        observed: set[int] = set()
        for window_range in self.window.ranges(timestamp):
            full_key = (key, window_range)
            partition = table._partition_for_write(full_key)
            if partition not in observed:
                observed.add(partition)
                state.observe(partition, timestamp)
            if state.is_closed(partition, window_range):
                state.late(key, window_range, value)
                continue
            store = table._writable(partition)
            if store is None:
                continue  # the partition is another worker's now
            old = store.get(full_key, _MISSING)
            table._set_in(partition, full_key,
                          fn(table.__missing__(full_key) if old is _MISSING else old))
            state.written(partition, key, window_range)

    def _written(self, key: Any, window_range: WindowRange) -> None:
        partition = self.table._partition_for_write((key, window_range))
        self.state.written(partition, key, window_range)

    def __getitem__(self, key: Any) -> WindowSet:
        return WindowSet(key, self.table, self, current_event())

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, WindowSet):
            return  # ``table[k] += 1`` already applied the operation
        self._update(key, self.get_timestamp(), value, lambda old: value)

    def __delitem__(self, key: Any) -> None:
        table = self.table
        for window_range in self.window.ranges(self.get_timestamp()):
            full_key = (key, window_range)
            if full_key in table:
                del table[full_key]

    def __contains__(self, key: object) -> bool:
        window_range = self._range_at(key, self.get_timestamp())
        return window_range is not None and (key, window_range) in self.table

    def _range_at(self, key: Any, timestamp: float) -> WindowRange | None:
        """The window of ``key`` that ``.current()``/``.value()`` read at ``timestamp``."""
        return self.window.current(timestamp)

    def _range_now(self, key: Any, now: float) -> WindowRange | None:
        """The window of ``key`` that ``.now()`` reads at wall-clock ``now``."""
        return self.window.earliest(now)

    # -- views ----------------------------------------------------------------------

    def _keys(self) -> list[Any]:
        seen: dict[Any, None] = {}
        for key, _ in self.table:
            seen.setdefault(key, None)
        return list(seen)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def keys(self) -> WindowedView:
        """Keys with a value in the window per relativity (``.now()``, ``.current()``, ...)."""
        return WindowedView(self, current_event(), lambda k, v: k)

    def values(self, event: Event | None = None) -> WindowedView:
        return WindowedView(self, event or current_event(), lambda k, v: v)

    def items(self, event: Event | None = None) -> WindowedView:
        """``(key, value)`` in the window per relativity; also ``.now()``, ``.current()``."""
        return WindowedView(self, event or current_event(), lambda k, v: (k, v))

    def _items_in(self, pick: Callable[[Any], WindowRange | None]
                  ) -> Iterator[tuple[Any, Any]]:
        table = self.table
        for key in self._keys():
            window_range = pick(key)
            if window_range is None:
                continue
            try:
                yield key, table[key, window_range]
            except KeyError:
                pass

    def windows(self) -> Iterator[tuple[Any, WindowRange, Any]]:
        """Every ``(key, (start, end), value)`` the table holds, oldest window first."""
        rows = [(key, rng, value) for (key, rng), value in self.table.items()]
        yield from sorted(rows, key=lambda row: (row[1], repr(row[0])))

    def as_ansitable(self, title: str | None = None, **kwargs: Any) -> str:
        """Every window of every key as text (key, window, value rows)."""
        from rich.console import Console
        from rich.table import Table as RichTable

        view = RichTable(title=title or self.table.name)
        for column in ("key", "window", "value"):
            view.add_column(column)
        for key, (start, end), value in self.windows():
            view.add_row(repr(key), f"{start:g} - {end:g}", repr(value))
        console = Console(width=100, record=True, force_terminal=False)
        with console.capture() as capture:
            console.print(view)
        return capture.get()


class WindowedView:
    """``wrapper.keys()/values()/items()``: iterate per relativity, or ``.now()`` etc."""

    def __init__(self, wrapper: WindowWrapper, event: Event | None,
                 shape: Callable[[Any, Any], Any]) -> None:
        self._wrapper = wrapper
        self.event = event
        self._shape = shape

    def _shaped(self, pairs: Iterator[tuple[Any, Any]]) -> Iterator[Any]:
        shape = self._shape
        for key, value in pairs:
            yield shape(key, value)

    def __iter__(self) -> Iterator[Any]:
        wrapper = self._wrapper
        timestamp = wrapper.get_timestamp(self.event)
        return self._shaped(wrapper._items_in(lambda key: wrapper._range_at(key, timestamp)))

    def __len__(self) -> int:
        return len(self._wrapper)

    def now(self) -> Iterator[Any]:
        wrapper = self._wrapper
        now = wrapper.table.app.clock.time()
        return self._shaped(wrapper._items_in(lambda key: wrapper._range_now(key, now)))

    def current(self, event: Event | None = None) -> Iterator[Any]:
        wrapper = self._wrapper
        timestamp = _event_time(event or self.event)
        return self._shaped(wrapper._items_in(lambda key: wrapper._range_at(key, timestamp)))

    def delta(self, d: Seconds, event: Event | None = None) -> Iterator[Any]:
        wrapper = self._wrapper
        timestamp = _event_time(event or self.event) - want_seconds(d)
        return self._shaped(wrapper._items_in(lambda key: wrapper._range_at(key, timestamp)))


def _window_of(table: Table) -> Window:
    window = table.window
    if window is None:  # pragma: no cover - only windowed tables have wrappers
        raise TableError(f"Table {table.name!r} is not windowed")
    return window


def _event_time(event: Event | None = None) -> float:
    event = event or current_event()
    if event is None:
        raise TableError(
            "This windowed-table operation needs the timestamp of the event being "
            "processed: use it inside a stream, pass event=, or use .now() / "
            "relative_to_now()")
    return event.message.timestamp
