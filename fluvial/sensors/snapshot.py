"""What the dashboard and ``fluvial status`` show: each worker's figures, and the group's.

:func:`worker_stats` is one worker's view (``/stats/``); :func:`group_stats`
asks every worker of the group (the URLs they advertise) for theirs
(``/stats/group/``), so any worker answers for the whole group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from ..app import App

__all__ = ["RecentErrors", "group_stats", "worker_stats"]

#: Seconds a worker may take to answer for its figures in a group view.
ASK_TIMEOUT_S = 2.0


class RecentErrors(logging.Handler):
    """Keeps the last error records logged by fluvial (and the agents it runs)."""

    def __init__(self, capacity: int = 20) -> None:
        super().__init__(logging.ERROR)
        self.records: deque[dict[str, Any]] = deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append({"time": record.created, "logger": record.name,
                             "message": record.getMessage()[:500]})


def _by_topic(tps: Any) -> dict[str, list[int]]:
    result: dict[str, list[int]] = {}
    for tp in tps:
        result.setdefault(tp.topic, []).append(tp.partition)
    return {topic: sorted(parts) for topic, parts in sorted(result.items())}


async def worker_stats(app: App) -> dict[str, Any]:
    """This worker's figures, JSON-able."""
    from .prometheus import lag_by_partition

    monitor = app.monitor
    conductor = app.conductor
    monitor_runtime = monitor.agent_runtime
    agents = {}
    for name, agent in sorted(app.agents.items()):
        hist = monitor_runtime.get(name)
        agents[name] = {
            "events": monitor.events_by_agent.get(name, 0),
            "events_s": round(monitor.events_s_by_agent.get(name, 0.0), 1),
            "processing_ms": round(hist.sum / hist.count * 1000, 4) if hist and hist.count
            else None,
            "crashes": agent.crashes,
        }
    replicas = app.tables.standby_replicas
    standby = sorted(replicas.partitions) if replicas is not None else []
    progress = app.tables.recovery_progress()
    lag, standby_lag = await lag_by_partition(app)
    errors = app.recent_errors.records if app.recent_errors is not None else []
    return {
        "app": app.conf.id,
        "url": app.conf.canonical_url,
        "time": time.time(),
        "running": app.started,
        "active": _by_topic(conductor.assignment()),
        "standby": standby,
        "recovering": sorted(app.tables.recovering),
        "recovery": ({"left": max(progress.total - progress.done, 0), "done": progress.done,
                      "rate": round(progress.rate, 1)} if progress is not None else None),
        "events_total": monitor.events_total,
        "events_s": round(monitor.events_s, 1),
        "messages_received_total": monitor.messages_received_total,
        "messages_s": round(monitor.messages_s, 1),
        "agents": agents,
        "lag": {f"{tp.topic}[{tp.partition}]": n for tp, n in sorted(lag.items())},
        "standby_lag": {f"{tp.topic}[{tp.partition}]": n for tp, n in sorted(standby_lag.items())},
        "tables": {t.name: {"keys": len(t), "changelog_records": t.changelog_records}
                   for t in app.tables},
        "rebalances": monitor.rebalances,
        "decode_errors": conductor.decode_errors,
        "dead_lettered": conductor.dead_lettered,
        "send_errors": monitor.send_errors,
        "errors": list(errors)[-10:],
    }


async def group_stats(app: App) -> dict[str, Any]:
    """Every worker's figures: this one's, and those of the others the group names."""
    mine = await worker_stats(app)
    others = sorted({w.url for w in app.router.view.workers
                     if w.url and w.url != app.conf.canonical_url})
    workers = [mine]
    unreachable: dict[str, str] = {}
    if others:
        async with httpx.AsyncClient(timeout=ASK_TIMEOUT_S) as client:
            answers = await asyncio.gather(*(client.get(f"{url}/stats/") for url in others),
                                           return_exceptions=True)
        for url, answer in zip(others, answers, strict=True):
            if isinstance(answer, BaseException):
                unreachable[url] = f"{type(answer).__name__}: {answer}"
            elif answer.status_code != 200:
                unreachable[url] = f"HTTP {answer.status_code}"
            else:
                workers.append(answer.json())
    workers.sort(key=lambda w: str(w.get("url")))
    return {"app": app.conf.id, "time": time.time(), "workers": workers,
            "unreachable": unreachable}
