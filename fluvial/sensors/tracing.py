"""OpenTelemetry tracing (the ``otel`` extra: ``pip install fluvial[otel]``).

``app.sensors.add(TracingSensor())`` gives every event an agent processes a
span (``process <agent>``, kind CONSUMER), child of the context the message
carries in its headers (W3C ``traceparent``/``tracestate``, or whatever
propagator OpenTelemetry is configured with). Messages sent while an event is
processed — ``topic.send``, an agent's ``send``/``ask`` and its replies, and
the messages a ``group_by`` writes to its repartition topic — carry the
current span's context on, so one trace follows an event through every
agent and repartition. The spans go to the tracer provider given (by default
OpenTelemetry's global one), which the app configures with its exporters.

Tracing is a per-event sensor: each event pays for its span, its
context's extraction and the exporter's work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import ImproperlyConfigured
from ..types import TP
from .base import Sensor

try:
    from opentelemetry import context, propagate, trace
    from opentelemetry.trace import SpanKind
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImproperlyConfigured(
        "Tracing needs OpenTelemetry: pip install 'fluvial[otel]' "
        "(opentelemetry-api and opentelemetry-sdk)") from exc

if TYPE_CHECKING:
    from ..events import Event
    from ..streams import Stream

__all__ = ["TracingSensor"]


class _Getter:
    """Reads a context from a message's headers (``[(str, bytes), ...]``)."""

    def get(self, carrier: Mapping[str, bytes], key: str) -> list[str] | None:
        value = carrier.get(key)
        return None if value is None else [value.decode("latin-1")]

    def keys(self, carrier: Mapping[str, bytes]) -> list[str]:
        return list(carrier)


_GETTER = _Getter()


class TracingSensor(Sensor):
    """A span per event processed by an agent; the context carried in headers."""

    def __init__(self, tracer_provider: Any = None) -> None:
        from .._version import __version__

        self.tracer = trace.get_tracer("fluvial", __version__, tracer_provider=tracer_provider)

    def on_stream_event_in(self, tp: TP, offset: int, stream: Stream[Any],
                           event: Event) -> dict[str, Any]:
        message = event.message
        parent = propagate.extract({k: v for k, v in message.headers}, getter=_GETTER)  # type: ignore[arg-type]
        name = f"process {stream.agent_name or stream.channel.label}"
        span = self.tracer.start_span(
            name, context=parent, kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": tp.topic,
                "messaging.destination.partition.id": str(tp.partition),
                "messaging.kafka.offset": offset,
                "fluvial.agent": stream.agent_name or "",
            })
        token = context.attach(trace.set_span_in_context(span))
        return {"span": span, "token": token}

    def on_stream_event_out(self, tp: TP, offset: int, stream: Stream[Any], event: Event,
                            state: dict[str, Any] | None = None) -> None:
        if not state:
            return
        span = state["span"]
        if trace.get_current_span() is span:
            context.detach(state["token"])
        span.end()

    def on_send_headers(self, topic: str, headers: list[tuple[str, bytes]]
                        ) -> list[tuple[str, bytes]]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if not carrier:
            return headers  # no span in progress
        kept = [(k, v) for k, v in headers if k not in carrier]
        return kept + [(k, v.encode("latin-1")) for k, v in carrier.items()]
