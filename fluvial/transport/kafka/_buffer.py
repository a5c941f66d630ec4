"""The loop-side buffer of fetched batches, with paused partitions held aside."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from itertools import groupby
from operator import attrgetter

from ...types import TP, Message

__all__ = ["FetchBuffer"]

#: A message's (topic, partition), equal to its ``TP`` (a tuple) without building one.
_TP_OF = attrgetter("topic", "partition")


class FetchBuffer:
    """Batches handed over by the consumer thread, read in order by ``getmany``.

    ``release(n)`` is called when ``n`` batches counted by the thread's
    hand-off bound have left the buffer (read, dropped or emptied).
    Messages of paused partitions are moved aside when reached and put back
    in front, in offset order, on resume: librdkafka resumes fetching *after*
    them, so dropping them would lose them.
    """

    def __init__(self, release: Callable[[int], None]) -> None:
        self._release = release
        self._batches: deque[list[Message]] = deque()
        self._pos = 0  # messages of _batches[0] already returned
        self._held: dict[TP, list[Message]] = {}
        self.paused: set[TP] = set()

    def __bool__(self) -> bool:
        return bool(self._batches)

    def append(self, batch: list[Message]) -> None:
        self._batches.append(batch)

    def take(self, max_records: int) -> list[Message]:
        batches = self._batches
        released = 0
        out: list[Message] = []
        while batches and len(out) < max_records:
            batch = batches[0]
            pos = self._pos
            end = pos + max_records - len(out)
            # The common case returns the thread's list itself, without a copy.
            chunk = batch if pos == 0 and end >= len(batch) else batch[pos:end]
            if end >= len(batch):
                batches.popleft()
                self._pos = 0
                released += 1
            else:
                self._pos = end
            if self.paused:
                chunk = self._hold_paused(chunk)
            if out:
                out.extend(chunk)
            else:
                out = chunk
        if released:
            self._release(released)
        return out

    def _hold_paused(self, chunk: list[Message]) -> list[Message]:
        # Fetched batches hold long runs of one partition: decide per run.
        paused = self.paused
        keep: list[Message] = []
        for key, run in groupby(chunk, _TP_OF):
            if key in paused:
                self._held.setdefault(TP(*key), []).extend(run)
            else:
                keep.extend(run)
        return keep

    def pause(self, tps: Iterable[TP]) -> None:
        self.paused.update(tps)

    def resume(self, tps: Iterable[TP]) -> int:
        """Un-pause ``tps``; returns 1 if held messages were put back as a new batch."""
        resumed = self.paused.intersection(tps)
        self.paused -= resumed
        held = [m for tp in resumed for m in self._held.pop(tp, ())]
        if not held:
            return 0
        self._trim_front()
        self._batches.appendleft(held)
        return 1

    def drop(self, tps: set[TP]) -> None:
        """Forget buffered messages of ``tps`` (revoked, or re-positioned by a seek)."""
        for tp in tps:
            self._held.pop(tp, None)
        if not self._batches:
            return
        self._trim_front()
        kept: deque[list[Message]] = deque()
        for batch in self._batches:
            rest = [m for m in batch if TP(m.topic, m.partition) not in tps]
            if rest:
                kept.append(rest)
        released = len(self._batches) - len(kept)
        self._batches = kept
        if released:
            self._release(released)

    def clear(self) -> None:
        self._held.clear()
        self.paused.clear()
        released = len(self._batches)
        self._batches.clear()
        self._pos = 0
        if released:
            self._release(released)

    def _trim_front(self) -> None:
        if self._pos:
            self._batches[0] = self._batches[0][self._pos :]
            self._pos = 0
