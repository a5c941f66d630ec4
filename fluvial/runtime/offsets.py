"""Which offsets may be committed: the acknowledged prefix of each partition."""

from __future__ import annotations

from collections import defaultdict, deque

from ..types import TP, Message

__all__ = ["OffsetTracker"]


class OffsetTracker:
    """Messages in fetch order per partition; commit up to the first unprocessed one.

    A message is processed when every stream that received it has acknowledged
    it (:attr:`~fluvial.types.Message.acked`). Memory is bounded by what is buffered,
    which back-pressure bounds.
    """

    __slots__ = ("_parts", "committed", "processed")

    def __init__(self) -> None:
        self._parts: dict[str, defaultdict[int, deque[Message]]] = {}
        #: Offsets already committed (next offset to read), to skip no-op commits.
        self.committed: dict[TP, int] = {}
        #: The next offset after the processed prefix of each partition: what a
        #: checkpoint that did not get to commit (cancelled, failed) still owes.
        self.processed: dict[TP, int] = {}

    def track(self, topic: str, messages: list[Message]) -> None:
        parts = self._parts.get(topic)
        if parts is None:
            parts = self._parts[topic] = defaultdict(deque)
        for message in messages:
            parts[message.partition].append(message)

    def advance(self) -> None:
        """Pop the processed prefix of every partition into :attr:`processed`.

        The fetch loop calls this every round, so the messages held are those
        not processed yet (and those after them), not all since the last
        checkpoint: memory stays bounded by the buffers while a checkpoint waits
        for its deliveries.
        """
        processed = self.processed
        acked_prefix = Message.acked_prefix
        for topic, parts in self._parts.items():
            for partition, queue in parts.items():
                done = acked_prefix(queue)
                if not done:
                    continue
                if done == len(queue):  # the usual case: all processed
                    processed[TP(topic, partition)] = queue[-1].offset + 1
                    queue.clear()
                    continue
                processed[TP(topic, partition)] = queue[done - 1].offset + 1
                for _ in range(done):
                    queue.popleft()

    def committable(self) -> dict[TP, int]:
        """Pop the processed prefix of every partition; return the offsets to commit
        (processed and not committed yet, including an earlier call's whose commit
        did not happen)."""
        self.advance()
        processed = self.processed
        committed = self.committed
        return {tp: offset for tp, offset in processed.items()
                if committed.get(tp, -1) < offset}

    def oldest_unprocessed(self) -> dict[TP, Message]:
        """Per partition, the first message some stream has not acknowledged yet."""
        heads: dict[TP, Message] = {}
        for topic, parts in self._parts.items():
            for partition, queue in parts.items():
                for message in queue:
                    if not message.acked:
                        heads[TP(topic, partition)] = message
                        break
        return heads

    def positions(self) -> dict[TP, int]:
        """The next offset to read of every partition tracked or committed."""
        positions = {**self.committed, **self.processed}
        for topic, parts in self._parts.items():
            for partition, queue in parts.items():
                if queue:
                    positions[TP(topic, partition)] = queue[-1].offset + 1
        return positions

    def unacked_refs(self) -> int:
        """Outstanding stream references of the messages tracked (acked ones count 0)."""
        return sum(m.holders for parts in self._parts.values() for q in parts.values()
                   for m in q)

    def pending(self) -> int:
        """Messages fetched and not yet committable."""
        return sum(len(q) for parts in self._parts.values() for q in parts.values())

    def in_flight(self, tps: set[TP], dropped: dict[int, int]) -> int:
        """Messages of ``tps`` that some stream still holds (``dropped``: copies per
        ``id(message)`` that were taken back from buffers and will never be acked)."""
        count = 0
        for tp in tps:
            parts = self._parts.get(tp.topic)
            queue = parts.get(tp.partition) if parts is not None else None
            if queue:
                count += sum(1 for m in queue if m.holders > dropped.get(id(m), 0))
        return count

    def forget(self, tps: set[TP]) -> None:
        """Stop tracking revoked partitions."""
        for tp in tps:
            parts = self._parts.get(tp.topic)
            if parts is not None:
                parts.pop(tp.partition, None)
            self.committed.pop(tp, None)
            self.processed.pop(tp, None)
