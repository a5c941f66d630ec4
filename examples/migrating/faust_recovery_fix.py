"""A fix for faust-streaming 0.15.3: events lost when a worker starts with tables to restore.

Not a fluvial program: a module for a Faust (faust-streaming) app. Import it in
the app's module, after ``import faust`` and before the worker starts::

    import faust
    import faust_recovery_fix  # noqa: F401

The bug (faust-streaming issue #596, open): when a worker starts and its tables
have changelog records to read, Faust's fetcher is already running when the
restore ends. ``Recovery.on_recovery_completed`` then resumes the source and
repartition partitions, waits for the seek to their committed offsets, and
only then resumes flow control, which empties every stream queue. The
records fetched while the seek was pending and not yet taken by an agent are
dropped: they are never processed in this run, and since they are never
acknowledged, Faust's committed offset stays at the first of them until the
worker stops (the next start processes everything after it again). A worker
with empty changelogs (the first run of an app) does not start its fetcher
before that point and loses nothing.

This replaces ``on_recovery_completed`` with the same steps in a safe order:
seek while the stream partitions are still paused, resume flow control (the
queues hold nothing of those partitions yet), and resume the partitions last.
It applies to faust-streaming 0.15.3 only (the version it was written and
tested against); with another version it warns and changes nothing.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import faust
from faust.tables.recovery import Recovery

FIXED_VERSIONS = {"0.15.3"}


async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
    """Faust's ``Recovery.on_recovery_completed``, resuming the stream partitions last."""
    app = self.app
    consumer = app.consumer
    self.log.info("Restore complete!")
    await app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callbacks = [
        asyncio.ensure_future(table.on_recovery_completed(
            self.actives_for_table[table], self.standbys_for_table[table]))
        for table in self.tables.values()
    ]
    if callbacks:
        await asyncio.wait(callbacks)
    assignment = consumer.assignment()
    if app.consumer_generation_id != generation_id:
        self.log.warning(f"Recovery rebalancing again app id "
                         f"{app.consumer_generation_id} param {generation_id}")
        return
    if assignment:
        # The stream partitions are still paused: nothing of them is fetched
        # into the stream queues while the seek is pending.
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(),
                         timeout=app.conf.broker_request_timeout)
    self.completed.set()
    app.flow_control.resume()  # empties the stream queues
    consumer.resume_flow()
    consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
    await app._fetcher.maybe_start()
    self.tables.on_actives_ready()
    if not app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    app.on_rebalance_end()
    self.log.info("Worker ready")


if faust.__version__ in FIXED_VERSIONS:
    Recovery.on_recovery_completed = on_recovery_completed  # type: ignore[method-assign]
else:
    warnings.warn(
        f"faust_recovery_fix was written for faust-streaming {', '.join(sorted(FIXED_VERSIONS))}, "
        f"not {faust.__version__}: not applied (check whether your version still resumes the "
        "stream partitions before seeking them in Recovery.on_recovery_completed)",
        stacklevel=2)
