"""``StatsdMonitor``: the monitor's figures sent to statsd over UDP (Faust's
``faust.sensors.statsd.StatsdMonitor``)::

    app = faust.App('orders', monitor=StatsdMonitor(host='statsd', prefix='orders'))

Like the :class:`~fluvial.sensors.Monitor` it extends, it reports per batch
of fetched messages and per run of events, one datagram per report (the
statsd lines joined by newlines); sends are reported one by one (as in Faust),
which costs each ``topic.send`` a callback.
Names: ``PREFIX.messages_received`` (and ``PREFIX.topic.TOPIC.messages_received``),
``events`` (and ``agent.AGENT.events``), ``events_runtime`` (ms, the mean of a
run), ``commit_latency``, ``messages_sent`` (and per topic), ``send_latency``,
``messages_send_failed``, ``assignments_complete``/``assignments_error``,
``assignment_latency``, ``rebalances``, ``rebalance_return_latency``,
``rebalance_end_latency``, ``topic_buffer_full``, ``http_status_code`` (per
``status_code``), ``http_response_latency``.
"""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..types import TP, Message
from .monitor import Monitor

if TYPE_CHECKING:
    from ..app import App
    from ..streams import Stream

__all__ = ["StatsdMonitor"]

logger = logging.getLogger(__name__)

#: A tag: (name, value); statsd folds tags into the metric name, Datadog sends them.
Tags = Sequence[tuple[str, str]]


class StatsdMonitor(Monitor):
    """Sends the monitor's figures to a statsd server (UDP)."""

    def __init__(self, host: str = "localhost", port: int = 8125, prefix: str = "faust-app",
                 rate: float = 1.0, **kwargs: Any) -> None:
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"rate must be in (0, 1], got {rate!r}")
        super().__init__(**kwargs)
        self.host = host
        self.port = port
        self.prefix = prefix
        self.rate = rate
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                     socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._address: tuple[str, int] | None = None
        self._lines: list[str] = []

    # -- the wire format --------------------------------------------------------------

    def _line(self, name: str, value: float | int, kind: str, tags: Tags) -> str:
        """One statsd line (tags folded into the name: ``topic.orders.messages_received``)."""
        path = ".".join([self.prefix, *(f"{k}.{_clean(v)}" for k, v in tags), name])
        rate = f"|@{self.rate:g}" if kind == "c" and self.rate < 1.0 else ""
        return f"{path}:{_number(value)}|{kind}{rate}"

    def count(self, name: str, value: int = 1, tags: Tags = ()) -> None:
        """Add ``value`` to counter ``name`` (sampled at ``rate``)."""
        if self.rate < 1.0 and random.random() >= self.rate:
            return
        self._lines.append(self._line(name, value, "c", tags))

    def gauge(self, name: str, value: float, tags: Tags = ()) -> None:
        self._lines.append(self._line(name, value, "g", tags))

    def timing(self, name: str, seconds: float, tags: Tags = ()) -> None:
        self._lines.append(self._line(name, round(seconds * 1000, 3), "ms", tags))

    def flush(self) -> None:
        """Send what the last hook reported, as one datagram."""
        lines, self._lines = self._lines, []
        if not lines:
            return
        try:
            if self._address is None:
                self._address = (socket.gethostbyname(self.host) if ":" not in self.host
                                 else self.host, self.port)
            self._socket.sendto("\n".join(lines).encode(), self._address)
        except OSError as exc:
            # Metrics are best effort: a full socket buffer or no route drops them.
            logger.debug("statsd: not sent to %s:%d: %s", self.host, self.port, exc)

    def close(self) -> None:
        self._socket.close()

    # -- hooks -------------------------------------------------------------------------

    def on_messages_in(self, topic: str, messages: Sequence[Message]) -> None:
        super().on_messages_in(topic, messages)
        n = len(messages)
        self.count("messages_received", n)
        self.count("messages_received", n, [("topic", topic)])
        self.flush()

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        super().on_message_in(tp, offset, message)
        self.count("messages_received")
        self.count("messages_received", 1, [("topic", tp.topic)])
        self.gauge("read_offset", offset, [("topic", tp.topic), ("partition", str(tp.partition))])
        self.flush()

    def on_stream_events(self, stream: Stream[Any], count: int, seconds: float) -> None:
        super().on_stream_events(stream, count, seconds)
        self.count("events", count)
        if stream.agent_name:
            self.count("events", count, [("agent", stream.agent_name)])
        self.timing("events_runtime", seconds / count)
        self.flush()

    def on_topic_buffer_full(self, tp: TP) -> None:
        super().on_topic_buffer_full(tp)
        self.count("topic_buffer_full", 1, [("topic", tp.topic)])
        self.flush()

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        super().on_commit_completed(consumer, state)
        if self.commit_latency:
            self.timing("commit_latency", self.commit_latency[-1])
        self.flush()

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int,
                          valsize: int) -> float:
        self.count("messages_sent", 1, [("topic", topic)])
        self.flush()
        return self.time()

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        self.count("messages_sent")
        if state is not None:
            latency = self.time() - state
            self.send_latency.append(latency)
            self.timing("send_latency", latency)
        self.flush()

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        self.send_errors += 1
        self.count("messages_send_failed")
        self.flush()

    def on_assignment_error(self, assignor: Any, state: dict[str, Any],
                            exc: BaseException) -> None:
        super().on_assignment_error(assignor, state, exc)
        self.count("assignments_error")
        self.flush()

    def on_assignment_completed(self, assignor: Any, state: dict[str, Any]) -> None:
        super().on_assignment_completed(assignor, state)
        self.count("assignments_complete")
        if state:
            self.timing("assignment_latency", self.time() - state["time_start"])
        self.flush()

    def on_rebalance_start(self, app: App) -> dict[str, Any]:
        state = super().on_rebalance_start(app)
        self.count("rebalances")
        self.flush()
        return state

    def on_rebalance_return(self, app: App, state: dict[str, Any]) -> None:
        super().on_rebalance_return(app, state)
        if state:
            self.timing("rebalance_return_latency", state["time_return"] - state["time_start"])
        self.flush()

    def on_rebalance_end(self, app: App, state: dict[str, Any]) -> None:
        super().on_rebalance_end(app, state)
        if state:
            self.timing("rebalance_end_latency", self.time() - state["time_start"])
        self.flush()

    def on_web_request_end(self, app: App, request: Any, response: Any,
                           state: dict[str, Any], *, view: Any = None) -> None:
        super().on_web_request_end(app, request, response, state, view=view)
        status = int(getattr(response, "status_code", 500))
        self.count("http_status_code", 1, [("status_code", str(status))])
        if state:
            self.timing("http_response_latency", self.time() - state["time_start"])
        self.flush()


def _clean(value: str) -> str:
    """A tag value usable inside a statsd name (no separators of the format)."""
    return value.replace(":", "_").replace("|", "_").replace("@", "_").replace("\n", "_")


def _number(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"
