"""Prometheus metrics of a worker (``/metrics`` with ``web_metrics_enabled``).

Rendered when scraped, from the app's :class:`~fluvial.sensors.Monitor` and
the worker's state (assignment, tables, standbys, recovery), so scrapes cost
the hot path nothing. Consumer lag is read from the partitions' high
watermarks at scrape time. Every name starts with ``fluvial_``; see
:data:`METRICS` (the README lists them too).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ..exceptions import FluvialError, ImproperlyConfigured
from ..types import TP
from .monitor import Histogram

if TYPE_CHECKING:
    from ..app import App

__all__ = ["CONTENT_TYPE", "METRICS", "exposition", "setup_prometheus_sensors"]

logger = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: What every metric's name starts with (``setup_prometheus_sensors(name_prefix=)`` changes it).
PREFIX = "fluvial"

#: Every metric served: name -> (type, labels, help).
METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "fluvial_messages_received": ("counter", ("topic",), "Messages fetched, per topic"),
    "fluvial_messages_sent": ("counter", ("topic",), "Messages sent by the app, per topic"),
    "fluvial_events": ("counter", ("agent",), "Events processed, per agent"),
    "fluvial_event_processing_seconds": (
        "histogram", ("agent",), "Time an agent spends on an event (mean of each run of "
        "events, weighted by its length)"),
    "fluvial_end_to_end_latency_seconds": (
        "histogram", ("topic",), "Now minus the message timestamp, of the newest message "
        "of each fetched batch"),
    "fluvial_events_active": ("gauge", (), "Events the agents hold and have not finished"),
    "fluvial_assigned_partitions": ("gauge", (), "Partitions assigned to this worker"),
    "fluvial_consumer_lag": ("gauge", ("topic", "partition"),
                             "Messages behind the partition's high watermark"),
    "fluvial_committed_offset": ("gauge", ("topic", "partition"),
                                 "Last offset committed (next to read)"),
    "fluvial_checkpoint_seconds": ("histogram", (), "Duration of a checkpoint: changelogs "
                                   "out, producer flushed, offsets committed"),
    "fluvial_changelog_records": ("counter", ("table",), "Records written to the changelog"),
    "fluvial_table_keys": ("gauge", ("table",), "Keys in the table's partitions held here"),
    "fluvial_recovery_records_left": ("gauge", (), "Changelog records left to restore"),
    "fluvial_recovery_records_per_second": ("gauge", (), "Rate of the recovery under way"),
    "fluvial_standby_lag": ("gauge", ("topic", "partition"),
                            "Changelog records a standby replica is behind"),
    "fluvial_rebalances": ("counter", (), "Rebalances this worker took part in"),
    "fluvial_decode_errors": ("counter", (), "Messages that could not be decoded"),
    "fluvial_dead_lettered": ("counter", (), "Messages sent to the dead-letter topic "
                              "(undecodable, or their processing failed)"),
    "fluvial_agent_crashes": ("counter", ("agent",), "Times an agent's actor crashed"),
    "fluvial_send_errors": ("counter", (), "Messages the app could not send"),
    "fluvial_web_requests": ("counter", ("method", "status"), "Web requests answered"),
    "fluvial_web_request_seconds": ("histogram", (), "Time to answer a web request"),
}


class _Families:
    """A collector handing out metric families gathered beforehand."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


async def exposition(app: App, name_prefix: str = PREFIX) -> bytes:
    """The worker's metrics in Prometheus' text format (names start with ``name_prefix``)."""
    families = list(_monitor_families(app))
    families += list(_state_families(app))
    families += await _lag_families(app)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(_renamed(families, name_prefix)))
    return generate_latest(registry)


class _AppCollector:
    """A collector of an app's metrics for a registry of the user's own (no consumer lag:
    collecting is synchronous)."""

    def __init__(self, app: App, name_prefix: str) -> None:
        self.app = app
        self.name_prefix = name_prefix

    def collect(self) -> Iterable[Metric]:
        families = [*_monitor_families(self.app), *_state_families(self.app)]
        return _renamed(families, self.name_prefix)


def setup_prometheus_sensors(app: App, pattern: str = "/metrics", registry: Any = None,
                             name_prefix: str | None = None) -> None:
    """faust-streaming's set-up call: serve the app's metrics at ``pattern`` with names
    starting ``name_prefix`` (default ``fluvial``), and, given a prometheus-client
    ``registry``, register them there too (without consumer lag)."""
    prefix = name_prefix or PREFIX
    if not prefix.replace("_", "").isalnum():
        raise ImproperlyConfigured(
            f"name_prefix={name_prefix!r}: use letters, digits and underscores")

    @app.page(pattern, name=f"metrics:{prefix}")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(await exposition(app, prefix), content_type=CONTENT_TYPE)

    if registry is not None:
        registry.register(_AppCollector(app, prefix))


def _renamed(families: list[Metric], prefix: str) -> list[Metric]:
    if prefix == PREFIX:
        return families
    for family in families:
        family.name = prefix + family.name[len(PREFIX):]
        family.samples = [sample._replace(name=prefix + sample.name[len(PREFIX):])
                          for sample in family.samples]
    return families


def _family(name: str) -> Any:
    kind, labels, doc = METRICS[name]
    cls = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily,
           "histogram": HistogramMetricFamily}[kind]
    return cls(name, doc, labels=list(labels))


def _histogram(family: HistogramMetricFamily, labels: list[str], hist: Histogram) -> None:
    family.add_metric(labels, [(bound, float(n)) for bound, n in hist.cumulative()],
                      hist.sum)


def _monitor_families(app: App) -> Iterator[Metric]:
    monitor = app.monitor
    monitor.count_sends(app)
    received = _family("fluvial_messages_received")
    for topic, n in sorted(monitor.messages_received_by_topic.items()):
        received.add_metric([topic], n)
    yield received
    sent = _family("fluvial_messages_sent")
    for topic, n in sorted(monitor.messages_sent_by_topic.items()):
        sent.add_metric([topic], n)
    yield sent
    events = _family("fluvial_events")
    for agent, n in sorted(monitor.events_by_agent.items()):
        events.add_metric([agent], n)
    yield events
    processing = _family("fluvial_event_processing_seconds")
    for agent, hist in sorted(monitor.agent_runtime.items()):
        _histogram(processing, [agent], hist)
    yield processing
    latency = _family("fluvial_end_to_end_latency_seconds")
    for topic, hist in sorted(monitor.end_to_end_latency.items()):
        _histogram(latency, [topic], hist)
    yield latency
    checkpoint = _family("fluvial_checkpoint_seconds")
    _histogram(checkpoint, [], monitor.commit_histogram)
    yield checkpoint
    rebalances = _family("fluvial_rebalances")
    rebalances.add_metric([], monitor.rebalances)
    yield rebalances
    send_errors = _family("fluvial_send_errors")
    send_errors.add_metric([], monitor.send_errors)
    yield send_errors
    requests = _family("fluvial_web_requests")
    for (method, status), n in sorted(monitor.http_requests.items()):
        requests.add_metric([method, str(status)], n)
    yield requests
    request_time = _family("fluvial_web_request_seconds")
    _histogram(request_time, [], monitor.http_histogram)
    yield request_time


def _state_families(app: App) -> Iterator[Metric]:
    conductor = app.conductor
    active = _family("fluvial_events_active")
    active.add_metric([], conductor.events_in_hand() if app.started else 0)
    yield active
    assigned = _family("fluvial_assigned_partitions")
    assigned.add_metric([], len(conductor.assignment()))
    yield assigned
    committed = _family("fluvial_committed_offset")
    for tp, offset in sorted(conductor.ctx.offsets.committed.items()):
        committed.add_metric([tp.topic, str(tp.partition)], offset)
    yield committed
    decode_errors = _family("fluvial_decode_errors")
    decode_errors.add_metric([], conductor.decode_errors)
    yield decode_errors
    dead_lettered = _family("fluvial_dead_lettered")
    dead_lettered.add_metric([], conductor.dead_lettered)
    yield dead_lettered
    crashes = _family("fluvial_agent_crashes")
    for name, agent in sorted(app.agents.items()):
        crashes.add_metric([name], agent.crashes)
    yield crashes
    changelog = _family("fluvial_changelog_records")
    keys = _family("fluvial_table_keys")
    for table in app.tables:
        changelog.add_metric([table.name], table.changelog_records)
        keys.add_metric([table.name], len(table))
    yield changelog
    yield keys
    progress = app.tables.recovery_progress()
    left = _family("fluvial_recovery_records_left")
    rate = _family("fluvial_recovery_records_per_second")
    left.add_metric([], max(progress.total - progress.done, 0) if progress else 0)
    rate.add_metric([], progress.rate if progress else 0.0)
    yield left
    yield rate


async def lag_by_partition(app: App) -> tuple[dict[TP, int], dict[TP, int]]:
    """Messages behind the high watermark of each assigned partition, and changelog
    records behind of each standby partition (empty while unknown: a rebalance)."""
    lag: dict[TP, int] = {}
    standby: dict[TP, int] = {}
    consumer = app.group_consumer
    assignment = app.conductor.assignment()
    try:
        if consumer is not None and assignment:
            ends = await consumer.end_offsets(assignment)
            app.monitor.tp_end_offsets.update(ends)
            positions = app.conductor.ctx.offsets.positions()
            unknown = [tp for tp in assignment if tp not in positions]
            if unknown:
                # Nothing read nor committed yet: where the consumer will start.
                started = await consumer.position(unknown)
                positions.update({tp: off for tp, off in started.items() if off is not None})
            for tp in sorted(assignment):
                if tp in positions:
                    lag[tp] = max(ends.get(tp, 0) - positions[tp], 0)
        replicas = app.tables.standby_replicas
        if replicas is not None:
            standby = await replicas.lag()
    except FluvialError as exc:
        # Asked during a rebalance or shutdown: the other figures still count.
        logger.info("Consumer lag not available now: %s", exc)
    return lag, standby


async def _lag_families(app: App) -> list[Metric]:
    lag = _family("fluvial_consumer_lag")
    standby = _family("fluvial_standby_lag")
    consumer_lag, standby_lag = await lag_by_partition(app)
    for tp, behind in sorted(consumer_lag.items()):
        lag.add_metric([tp.topic, str(tp.partition)], behind)
    for tp, behind in sorted(standby_lag.items()):
        standby.add_metric([tp.topic, str(tp.partition)], behind)
    return [lag, standby]

