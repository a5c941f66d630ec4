"""Committed table changes, for listeners (the web layer's live feed, your own code).

``table.on_committed_change(listener)`` calls ``listener(changes)`` once per
checkpoint that changed the table, with the :class:`TableChange` of every key
the checkpoint sent to the changelog, and only once the checkpoint committed:
at least once, after the changelog records were delivered and the processed
offsets committed; exactly once, after the transaction committed. Nothing is
reported for a checkpoint that failed (an aborted transaction, a commit the
group refused): its events are processed again, by this worker or the
partitions' new owner, and their changes reported then.

What a change is:

- a :class:`~fluvial.tables.Table`: a key and its latest value at the
  checkpoint (several writes of a key between two checkpoints are one change),
  or its deletion;
- a windowed table: one window of a key, ``key`` is ``(key, (start, end))`` as
  in the table; a window deleted when it expires is a deletion;
- a session-windowed table: likewise; sessions that merge are the deletion of
  the old sessions and the value of the merged one;
- a :class:`~fluvial.tables.SetTable`: a key and its whole set after the
  checkpoint (a ``frozenset``); a set that became empty is a deletion.

A worker reports the changes it commits, that is of the partitions it owns;
the changes other workers commit (even to a global table, which this worker
tails) are reported by them.

Listeners run in the worker's event loop, inside the checkpoint: they must
return quickly and never block (hand the changes to a queue). An exception
in a listener is logged and does not stop the checkpoint nor the other
listeners. With no listener, a checkpoint collects nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .table import Table

__all__ = ["ChangeListener", "TableChange", "notify"]

logger = logging.getLogger(__name__)


class TableChange(NamedTuple):
    """One committed change of a key of a table."""

    #: The table changed.
    table: Table
    #: The key, as the table holds it (``(key, (start, end))`` in a windowed table).
    key: Any
    #: The value committed (``None`` when deleted).
    value: Any
    #: Whether the key was deleted (a tombstone in the changelog, an emptied set).
    deleted: bool
    #: The table partition the key is in.
    partition: int


#: Called with the changes of one committed checkpoint of one table.
ChangeListener = Callable[[Sequence[TableChange]], Any]


def notify(listeners: Sequence[ChangeListener], changes: Sequence[TableChange]) -> None:
    """Hand ``changes`` to each listener; a listener's exception is logged, not raised."""
    for listener in listeners:
        try:
            listener(changes)
        except Exception:
            logger.exception("Table %s: a committed-change listener (%r) failed",
                             changes[0].table.name, listener)
