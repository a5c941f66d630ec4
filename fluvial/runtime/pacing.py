"""Pacing of re-joins: a worker that keeps being thrown out must not spin."""

from __future__ import annotations

import time

__all__ = ["FENCE_WINDOW_S", "FIRST_BACKOFF_S", "MAX_BACKOFF_S", "RejoinPacing"]

#: A re-join within this many seconds of the previous one backs off first.
FENCE_WINDOW_S = 60.0
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0


class RejoinPacing:
    """0 s for a first re-join, then 1 s, 2 s, 4 s … (at most 30 s) while they keep coming."""

    def __init__(self) -> None:
        self.count = 0
        self._last = 0.0
        self._backoff = 0.0

    def next_delay(self) -> float:
        """Seconds to wait before this re-join."""
        now = time.monotonic()
        if self.count and now - self._last < FENCE_WINDOW_S:
            self._backoff = min(max(self._backoff * 2, FIRST_BACKOFF_S), MAX_BACKOFF_S)
        else:
            self._backoff = 0.0
        self.count += 1
        self._last = now
        return self._backoff
