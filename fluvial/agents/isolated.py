"""``isolated_partitions=True``: one actor per partition, started on its first event.

The conductor sees one subscriber; inside, events are split by partition into
a buffer per partition, each read by its own actor. Revoking a partition
stops its actor and drops its queued events (the new owner reads them again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..buffers import EventBuffer
from ..types import TP, Message

__all__ = ["PartitionedBuffers"]

StartActor = Callable[[EventBuffer, int], "asyncio.Task[None]"]


class PartitionedBuffers(EventBuffer):
    """An :class:`EventBuffer` for the conductor that fans out to per-partition buffers."""

    __slots__ = ("_actors", "_parts", "_start_actor")

    def __init__(self, maxsize: int, topics: Any, start_actor: StartActor) -> None:
        super().__init__(maxsize, topics)
        self._parts: dict[int, EventBuffer] = {}
        self._actors: dict[int, asyncio.Task[None]] = {}
        self._start_actor = start_actor

    def __len__(self) -> int:
        return sum(len(b) for b in self._parts.values())

    @property
    def full(self) -> bool:
        return any(b.full for b in self._parts.values())

    def _part(self, partition: int) -> EventBuffer:
        buffer = self._parts.get(partition)
        if buffer is None:
            buffer = self._parts[partition] = EventBuffer(self.maxsize, self.topics)
            buffer.on_drain = self._part_drained
            self._actors[partition] = self._start_actor(buffer, partition)
        return buffer

    def put(self, message: Message) -> None:
        self._part(message.partition).put(message)

    def put_many(self, messages: list[Message]) -> None:
        by_partition: dict[int, list[Message]] = {}
        for message in messages:
            by_partition.setdefault(message.partition, []).append(message)
        for partition, batch in by_partition.items():
            buffer = self._part(partition)
            buffer.put_many(batch)
            if buffer.full:
                buffer.draining = True
                self.draining = True

    def _part_drained(self, _: EventBuffer) -> None:
        if self.draining and not self.full:
            self.draining = False
            if self.on_drain is not None:
                self.on_drain(self)

    # The actor of a revoked partition is cancelled: it abandons the event in hand.
    keeps_actors = False

    def discard(self, tps: set[TP]) -> list[Message]:
        dropped: list[Message] = []
        for partition in {tp.partition for tp in tps if tp.topic in self.topics}:
            buffer = self._parts.pop(partition, None)
            if buffer is not None:
                dropped.extend(buffer.discard(tps))
            task = self._actors.pop(partition, None)
            if task is not None:
                task.cancel()
        return dropped

    def actors(self) -> list[asyncio.Task[None]]:
        return list(self._actors.values())
