"""``Monitor``: Faust's default sensor, keeping statistics of what the worker does.

Counts are taken per batch of fetched messages and per run of events an agent
processed, not per event, so the monitor costs little (see bench/README.md).
Rates and averages are updated every second while the worker runs
(:meth:`Monitor.sample`). The Prometheus page, the dashboard and
``fluvial status`` read a worker's monitor.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Sequence
from statistics import fmean
from typing import TYPE_CHECKING, Any

from ..types import TP, Message
from .base import Sensor

if TYPE_CHECKING:
    from ..app import App
    from ..streams import Stream

__all__ = ["Histogram", "Monitor"]

#: Upper bounds (seconds) of the latency histograms' buckets.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

MAX_AVG_HISTORY = 100
MAX_COMMIT_LATENCY_HISTORY = 30
MAX_SEND_LATENCY_HISTORY = 30
MAX_ASSIGNMENT_LATENCY_HISTORY = 30


class Histogram:
    """Counts of observations per bucket (cumulative when read), their sum and count."""

    __slots__ = ("bounds", "buckets", "count", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.buckets = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float, count: int = 1) -> None:
        """``count`` observations of ``value`` (a run of events at its mean time)."""
        self.buckets[bisect_left(self.bounds, value)] += count
        self.count += count
        self.sum += value * count

    def cumulative(self) -> list[tuple[str, int]]:
        """``(upper bound, observations <= bound)`` pairs, ending with ``+Inf``."""
        result: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip((*map(repr, self.bounds), "+Inf"), self.buckets, strict=True):
            total += n
            result.append((bound, total))
        return result


class Monitor(Sensor):
    """Statistics of a worker: messages, events, commits, sends, rebalances, requests.

    The attribute names are Faust's (``messages_received_total``,
    ``events_runtime``, ``commit_latency`` …); :meth:`asdict` reports them.
    ``messages_sent`` counts what the app's topics sent (``topic.send``, agents'
    sends and replies), ``send_latency`` the time each checkpoint waited for the
    producer to deliver what was sent before it; ``send_errors`` is counted by
    monitors told about each send (statsd, Datadog).
    fluvial adds per-agent counts and processing-time histograms and an
    end-to-end latency histogram per topic (the age of the newest message of
    each fetched batch).
    """

    def __init__(self, *, max_avg_history: int | None = None,
                 max_commit_latency_history: int | None = None,
                 max_send_latency_history: int | None = None,
                 max_assignment_latency_history: int | None = None,
                 time: Callable[[], float] = time.monotonic) -> None:
        self.max_avg_history = max_avg_history or MAX_AVG_HISTORY
        self.max_commit_latency_history = (max_commit_latency_history
                                           or MAX_COMMIT_LATENCY_HISTORY)
        self.max_send_latency_history = max_send_latency_history or MAX_SEND_LATENCY_HISTORY
        self.max_assignment_latency_history = (max_assignment_latency_history
                                               or MAX_ASSIGNMENT_LATENCY_HISTORY)
        self.time = time
        self.messages_active = 0
        self.messages_received_total = 0
        self.messages_received_by_topic: Counter[str] = Counter()
        self.messages_sent = 0
        self.messages_sent_by_topic: Counter[str] = Counter()
        self.messages_s = 0.0
        self._events_active = 0
        self.events_total = 0
        self.events_s = 0.0
        self.events_by_stream: Counter[str] = Counter()
        self.events_by_task: Counter[str] = Counter()
        self.events_runtime: deque[float] = deque(maxlen=self.max_avg_history)
        self.events_runtime_avg = 0.0
        self.commit_latency: deque[float] = deque(maxlen=self.max_commit_latency_history)
        self.send_latency: deque[float] = deque(maxlen=self.max_send_latency_history)
        self.assignment_latency: deque[float] = deque(
            maxlen=self.max_assignment_latency_history)
        #: Checkpoints completed.
        self.commits_total = 0
        self.assignments_completed = 0
        self.assignments_failed = 0
        self.send_errors = 0
        self.topic_buffer_full: Counter[TP] = Counter()
        self.rebalances = 0
        self.rebalance_return_latency: deque[float] = deque(maxlen=self.max_avg_history)
        self.rebalance_end_latency: deque[float] = deque(maxlen=self.max_avg_history)
        self.rebalance_return_avg = 0.0
        self.rebalance_end_avg = 0.0
        self.tp_committed_offsets: dict[TP, int] = {}
        self.tp_read_offsets: dict[TP, int] = {}
        self.tp_end_offsets: dict[TP, int] = {}
        self.http_response_codes: Counter[int] = Counter()
        self.http_response_latency: deque[float] = deque(maxlen=self.max_avg_history)
        self.http_response_latency_avg = 0.0
        # fluvial's additions.
        #: Events processed per agent, and their processing time.
        self.events_by_agent: Counter[str] = Counter()
        self.agent_runtime: dict[str, Histogram] = {}
        #: Now minus the message timestamp, of the newest message of each fetched batch.
        self.end_to_end_latency: dict[str, Histogram] = {}
        self.commit_histogram = Histogram()
        self.http_histogram = Histogram()
        self.http_requests: Counter[tuple[str, int]] = Counter()
        #: Events per second of each agent, at the last sample.
        self.events_s_by_agent: dict[str, float] = {}
        #: (time, events_total, messages_received_total) of the last sample.
        self._last_sample: tuple[float, int, int] = (self.time(), 0, 0)
        self._last_by_agent: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.events_total} events>"

    @property
    def events_active(self) -> int:
        """Events the agents took and have not finished, counted when read.

        Counting them goes over every fetched message not yet committed
        (2-3 ms at 10,000 events/s): done for each reader, not every second on
        the event loop for nobody.
        """
        app = self.app
        if app is not None and app.started:
            return app.conductor.events_in_hand()
        return self._events_active

    @events_active.setter
    def events_active(self, value: int) -> None:
        self._events_active = value

    # -- hooks ------------------------------------------------------------------------

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        self.messages_received_total += 1
        self.messages_received_by_topic[tp.topic] += 1
        self.tp_read_offsets[tp] = offset

    def on_messages_in(self, topic: str, messages: Sequence[Message]) -> None:
        n = len(messages)
        self.messages_received_total += n
        self.messages_received_by_topic[topic] += n
        newest = messages[-1]
        histogram = self.end_to_end_latency.get(topic)
        if histogram is None:
            histogram = self.end_to_end_latency[topic] = Histogram()
        histogram.observe(max(time.time() - newest.timestamp, 0.0))

    def on_stream_events(self, stream: Stream[Any], count: int, seconds: float) -> None:
        self.events_total += count
        self.events_by_stream[stream.label] += count
        per_event = seconds / count
        self.events_runtime.append(per_event)
        agent = stream.agent_name
        if agent is not None:
            self.events_by_agent[agent] += count
            self.events_by_task[agent] += count
            histogram = self.agent_runtime.get(agent)
            if histogram is None:
                histogram = self.agent_runtime[agent] = Histogram()
            histogram.observe(per_event, count)

    def on_topic_buffer_full(self, tp: TP) -> None:
        self.topic_buffer_full[tp] += 1

    def on_commit_initiated(self, consumer: Any) -> float:
        return self.time()

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        self.commits_total += 1
        if state is None:
            return
        latency = self.time() - state
        self.commit_latency.append(latency)
        self.commit_histogram.observe(latency)

    def on_producer_flushed(self, seconds: float) -> None:
        # Not per message (that would cost every send a callback): the time the
        # producer took to deliver everything sent before a checkpoint.
        self.send_latency.append(seconds)

    def on_assignment_start(self, assignor: Any) -> dict[str, Any]:
        return {"time_start": self.time()}

    def on_assignment_error(self, assignor: Any, state: dict[str, Any],
                            exc: BaseException) -> None:
        self.assignments_failed += 1

    def on_assignment_completed(self, assignor: Any, state: dict[str, Any]) -> None:
        self.assignments_completed += 1
        if state:
            self.assignment_latency.append(self.time() - state["time_start"])

    def on_rebalance_start(self, app: App) -> dict[str, Any]:
        self.rebalances += 1
        return {"time_start": self.time()}

    def on_rebalance_return(self, app: App, state: dict[str, Any]) -> None:
        if state:
            state["time_return"] = self.time()
            self.rebalance_return_latency.append(state["time_return"] - state["time_start"])
            self.rebalance_return_avg = fmean(self.rebalance_return_latency)

    def on_rebalance_end(self, app: App, state: dict[str, Any]) -> None:
        if state:
            self.rebalance_end_latency.append(self.time() - state["time_start"])
            self.rebalance_end_avg = fmean(self.rebalance_end_latency)

    def on_web_request_start(self, app: App, request: Any, *,
                             view: Any = None) -> dict[str, Any]:
        return {"time_start": self.time()}

    def on_web_request_end(self, app: App, request: Any, response: Any,
                           state: dict[str, Any], *, view: Any = None) -> None:
        status = int(getattr(response, "status_code", 500) if response is not None else 500)
        self.http_response_codes[status] += 1
        self.http_requests[(str(getattr(request, "method", "GET")), status)] += 1
        if state:
            latency = self.time() - state["time_start"]
            self.http_response_latency.append(latency)
            self.http_response_latency_avg = fmean(self.http_response_latency)
            self.http_histogram.observe(latency)

    # -- sampling -----------------------------------------------------------------------

    def sample(self) -> None:
        """Rates and averages since the last sample; what the worker holds now."""
        now = self.time()
        then, events, messages = self._last_sample
        elapsed = now - then
        if elapsed > 0:
            self.events_s = (self.events_total - events) / elapsed
            self.messages_s = (self.messages_received_total - messages) / elapsed
            last = self._last_by_agent
            self.events_s_by_agent = {agent: (n - last[agent]) / elapsed
                                      for agent, n in self.events_by_agent.items()}
            self._last_by_agent = Counter(self.events_by_agent)
        self._last_sample = (now, self.events_total, self.messages_received_total)
        if self.events_runtime:
            self.events_runtime_avg = fmean(self.events_runtime)
        app = self.app
        if app is not None:
            self.count_sends(app)
        if app is not None and app.started:
            conductor = app.conductor
            self.messages_active = conductor.ctx.offsets.pending()
            self.tp_read_offsets.update(conductor.ctx.offsets.positions())
            self.tp_committed_offsets = dict(conductor.ctx.offsets.committed)

    def count_sends(self, app: App) -> None:
        """Messages sent per topic, from the topics' own counters (no per-send hook)."""
        from ..channels import Topic

        by_topic: Counter[str] = Counter()
        for channel in app.topics:
            if isinstance(channel, Topic) and channel.messages_sent:
                by_topic[channel.get_topic_name()] += channel.messages_sent
        self.messages_sent_by_topic = by_topic
        self.messages_sent = sum(by_topic.values())

    def asdict(self) -> dict[str, Any]:
        """Faust's report of the monitor's figures (plain JSON-able values)."""
        return {
            "messages_active": self.messages_active,
            "messages_received_total": self.messages_received_total,
            "messages_sent": self.messages_sent,
            "messages_sent_by_topic": dict(self.messages_sent_by_topic),
            "messages_s": self.messages_s,
            "messages_received_by_topic": dict(self.messages_received_by_topic),
            "events_active": self.events_active,
            "events_total": self.events_total,
            "events_s": self.events_s,
            "events_runtime_avg": self.events_runtime_avg,
            "events_by_task": dict(self.events_by_task),
            "events_by_stream": dict(self.events_by_stream),
            "events_by_agent": dict(self.events_by_agent),
            "commit_latency": list(self.commit_latency),
            "send_latency": list(self.send_latency),
            "assignment_latency": list(self.assignment_latency),
            "commits_total": self.commits_total,
            "assignments_completed": self.assignments_completed,
            "assignments_failed": self.assignments_failed,
            "send_errors": self.send_errors,
            "topic_buffer_full": {f"{tp.topic}[{tp.partition}]": n
                                  for tp, n in self.topic_buffer_full.items()},
            "rebalances": self.rebalances,
            "rebalance_return_latency": list(self.rebalance_return_latency),
            "rebalance_end_latency": list(self.rebalance_end_latency),
            "rebalance_return_avg": self.rebalance_return_avg,
            "rebalance_end_avg": self.rebalance_end_avg,
            "topic_committed": _by_topic(self.tp_committed_offsets),
            "topic_read": _by_topic(self.tp_read_offsets),
            "topic_end": _by_topic(self.tp_end_offsets),
            "http_response_codes": {str(code): n for code, n in self.http_response_codes.items()},
            "http_response_latency_avg": self.http_response_latency_avg,
        }


def _by_topic(offsets: dict[TP, int]) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = {}
    for tp, offset in sorted(offsets.items()):
        result.setdefault(tp.topic, {})[str(tp.partition)] = offset
    return result
