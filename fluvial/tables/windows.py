"""Window kinds: which time ranges an event timestamp falls into.

A window range is ``(start, end)`` in seconds. Faust labels a hopping window
``(start, start + size - 0.1)`` and windowed tables store their keys as
``(key, (start, end))``; we keep that label so a changelog written by a Faust
app restores here, while the math (ranges, closing) uses the real, exclusive
end ``start + size``.

>>> w = TumblingWindow(10)
>>> w.ranges(15.0)
[(10.0, 19.9)]
>>> HoppingWindow(10, 5).ranges(12.0)
[(5.0, 14.9), (10.0, 19.9)]

A session window has no fixed ranges: its range is ``(first event, last
event)`` of a burst of events less than ``gap`` seconds apart, and the table
(:mod:`.sessions`) grows and merges it as events arrive.

>>> s = SessionWindow(30)
>>> s.joins((100.0, 110.0), 139.0), s.joins((100.0, 110.0), 140.0)
(True, False)
>>> s.closes_at((100.0, 110.0))
140.0
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Union

from ..exceptions import ImproperlyConfigured

__all__ = [
    "HoppingWindow",
    "Seconds",
    "SessionWindow",
    "SlidingWindow",
    "TumblingWindow",
    "Window",
    "WindowRange",
    "want_seconds",
]

Seconds = Union[float, int, timedelta]
WindowRange = tuple[float, float]

#: What Faust subtracts from a hopping window's end to label it.
_END_LABEL_OFFSET = 0.1


def want_seconds(value: Seconds) -> float:
    """Seconds as a float, from a number or a :class:`~datetime.timedelta`."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


class Window:
    """A kind of window: the ranges of a timestamp and when a range is over."""

    expires: float | None = None

    def ranges(self, timestamp: float) -> list[WindowRange]:
        """Every window range ``timestamp`` falls into, oldest first."""
        raise NotImplementedError

    def current(self, timestamp: float) -> WindowRange:
        """The latest window range holding ``timestamp``."""
        raise NotImplementedError

    def earliest(self, timestamp: float) -> WindowRange:
        """The oldest window range holding ``timestamp``."""
        raise NotImplementedError

    def delta(self, timestamp: float, d: Seconds) -> WindowRange:
        """The window range :meth:`current` gives ``d`` seconds before ``timestamp``."""
        return self.current(timestamp - want_seconds(d))

    def closes_at(self, window_range: WindowRange) -> float:
        """The time after which no event timestamp can fall into ``window_range``."""
        raise NotImplementedError

    def earliest_event(self, window_range: WindowRange) -> float:
        """The earliest timestamp of an event that updates ``window_range``."""
        raise NotImplementedError

    def stream_time_floor(self, window_range: WindowRange) -> float:
        """A time the stream has reached in a partition that holds ``window_range``."""
        return self.earliest_event(window_range)

    def stale(self, timestamp: float, latest_timestamp: float) -> bool:
        """Faust's test: a window ending at ``timestamp`` has expired at ``latest_timestamp``."""
        if not self.expires:
            return False
        return timestamp <= self.current(latest_timestamp - self.expires)[0]


class HoppingWindow(Window):
    """Fixed-size windows starting every ``step`` seconds (they overlap when step < size)."""

    def __init__(self, size: Seconds, step: Seconds, expires: Seconds | None = None) -> None:
        self.size = want_seconds(size)
        self.step = want_seconds(step)
        if self.size <= 0 or self.step <= 0:
            raise ImproperlyConfigured(
                f"Window size and step must be > 0 seconds, got size={self.size}, "
                f"step={self.step}")
        if self.step > self.size:
            raise ImproperlyConfigured(
                f"Window step ({self.step}s) larger than its size ({self.size}s) would leave "
                "gaps between windows: use step <= size")
        self.expires = want_seconds(expires) if expires else None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(size={self.size}, step={self.step}, "
                f"expires={self.expires})")

    def _range(self, start: float) -> WindowRange:
        return (start, start + self.size - _END_LABEL_OFFSET)

    def _first_start(self, timestamp: float) -> float:
        # Starts are multiples of step in (timestamp - size, timestamp]; when
        # size is a multiple of step this is Faust's formula, so keys match.
        return float((math.floor((timestamp - self.size) / self.step) + 1) * self.step)

    def ranges(self, timestamp: float) -> list[WindowRange]:
        start = self._first_start(timestamp)
        step = self.step
        n = math.floor((timestamp - start) / step)
        return [self._range(float(start + i * step)) for i in range(n + 1)]

    def current(self, timestamp: float) -> WindowRange:
        return self._range(float(math.floor(timestamp / self.step) * self.step))

    def earliest(self, timestamp: float) -> WindowRange:
        return self._range(self._first_start(timestamp))

    def closes_at(self, window_range: WindowRange) -> float:
        return window_range[0] + self.size

    def earliest_event(self, window_range: WindowRange) -> float:
        return window_range[0]


class TumblingWindow(HoppingWindow):
    """Fixed-size windows, one after the other, without gaps or overlap."""

    def __init__(self, size: Seconds, expires: Seconds | None = None) -> None:
        super().__init__(size, size, expires)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, expires={self.expires})"


class SlidingWindow(Window):
    """One window per event: from ``before`` seconds before it to ``after`` seconds after."""

    def __init__(self, before: Seconds, after: Seconds, expires: Seconds | None = None) -> None:
        self.before = want_seconds(before)
        self.after = want_seconds(after)
        if self.before < 0 or self.after < 0:
            raise ImproperlyConfigured("Sliding window before/after must be >= 0 seconds")
        self.expires = want_seconds(expires) if expires else None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(before={self.before}, after={self.after}, "
                f"expires={self.expires})")

    def ranges(self, timestamp: float) -> list[WindowRange]:
        return [self.current(timestamp)]

    def current(self, timestamp: float) -> WindowRange:
        return (timestamp - self.before, timestamp + self.after)

    def earliest(self, timestamp: float) -> WindowRange:
        return self.current(timestamp)

    def closes_at(self, window_range: WindowRange) -> float:
        return window_range[1]

    def earliest_event(self, window_range: WindowRange) -> float:
        return window_range[0] + self.before

    def stale(self, timestamp: float, latest_timestamp: float) -> bool:
        if not self.expires:
            return False
        return timestamp <= latest_timestamp - self.expires


class SessionWindow(Window):
    """Per key, a burst of events each less than ``gap`` seconds after the one before.

    An event at ``t`` joins a session ``(start, end)`` when
    ``start - gap < t < end + gap``: it extends the session, or bridges two
    sessions into one. No event can join a session once the stream time has
    passed ``end + gap``, so that is when it closes (plus the table's grace).
    :meth:`ranges` and :meth:`current` give the session an event at ``t``
    would start on its own; which sessions exist is the table's business.
    """

    def __init__(self, gap: Seconds, expires: Seconds | None = None) -> None:
        self.gap = want_seconds(gap)
        if self.gap <= 0:
            raise ImproperlyConfigured(f"Session gap must be > 0 seconds, got {self.gap}")
        self.expires = want_seconds(expires) if expires else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(gap={self.gap}, expires={self.expires})"

    def joins(self, window_range: WindowRange, timestamp: float) -> bool:
        """Does an event at ``timestamp`` belong to the session ``window_range``?"""
        start, end = window_range
        return start - self.gap < timestamp < end + self.gap

    def ranges(self, timestamp: float) -> list[WindowRange]:
        return [self.current(timestamp)]

    def current(self, timestamp: float) -> WindowRange:
        return (timestamp, timestamp)

    def earliest(self, timestamp: float) -> WindowRange:
        return self.current(timestamp)

    def closes_at(self, window_range: WindowRange) -> float:
        return window_range[1] + self.gap

    def earliest_event(self, window_range: WindowRange) -> float:
        return window_range[0]

    def stream_time_floor(self, window_range: WindowRange) -> float:
        # A session's end is the timestamp of its latest event.
        return window_range[1]

    def stale(self, timestamp: float, latest_timestamp: float) -> bool:
        if not self.expires:
            return False
        return timestamp + self.gap + self.expires <= latest_timestamp
