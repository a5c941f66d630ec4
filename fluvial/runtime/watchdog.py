"""Faust's ``stream_processing_timeout``: say so when a stream is stuck on an event.

As in Faust, nothing is stopped: an error is logged when a partition's
oldest unprocessed event has stayed the same for longer than the timeout
(an agent blocked on it, or no longer reading its topic), once per event.
Checked a few times per timeout from the offsets the conductor tracks, so
the hot path pays nothing for it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..types import TP

if TYPE_CHECKING:
    from ..app import App

__all__ = ["watch_processing"]

logger = logging.getLogger(__name__)

#: Longest pause between two checks, whatever the timeout.
MAX_CHECK_INTERVAL_S = 10.0


async def watch_processing(app: App) -> None:
    """Run for the worker's lifetime (a background task)."""
    timeout = app.conf.stream_processing_timeout
    interval = min(max(timeout / 4, 0.01), MAX_CHECK_INTERVAL_S)
    #: Per partition: the offset at its head, since when (monotonic), reported yet.
    heads: dict[TP, tuple[int, float, bool]] = {}
    while True:
        await app.clock.sleep(interval)
        now = time.monotonic()
        current = app.conductor.ctx.offsets.oldest_unprocessed()
        for tp in list(heads):
            if tp not in current:
                del heads[tp]
        for tp, message in current.items():
            seen = heads.get(tp)
            if seen is None or seen[0] != message.offset:
                heads[tp] = (message.offset, now, False)
            elif not seen[2] and now - seen[1] >= timeout:
                heads[tp] = (seen[0], seen[1], True)
                logger.error(
                    "Stream processing stuck: the event at %s[%d]@%d has not been processed "
                    "after %.0f s (stream_processing_timeout=%g s). An agent is blocked on it "
                    "or stopped reading %r; give slow calls a timeout inside the agent, or "
                    "raise stream_processing_timeout.",
                    tp.topic, tp.partition, message.offset, now - seen[1], timeout, tp.topic)
