"""Sensors: objects told what the worker does (Faust's ``faust.Sensor``).

A sensor overrides the hooks it cares about; ``app.sensors.add(sensor)``
installs it. The hot path asks the :class:`SensorDelegate` once per batch
whether anybody listens, so hooks nobody overrides cost nothing.

Per-event hooks (``on_stream_event_in/out``, ``on_message_out``) are called
for every event, as in Faust, but only while a sensor that overrides them is
installed. fluvial's own batch hooks (``on_messages_in``,
``on_stream_events``) let a sensor count a whole batch or run of events at
once; the default :class:`~fluvial.sensors.Monitor` uses those.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..types import TP, Message

if TYPE_CHECKING:
    from ..app import App
    from ..events import Event
    from ..streams import Stream

__all__ = ["Sensor", "SensorDelegate"]

logger = logging.getLogger(__name__)


class Sensor:
    """Base class of sensors: every hook does nothing; override what you need.

    Hooks run in the worker's event loop and must not block. A hook returning
    a state (``on_stream_event_in``, ``on_commit_initiated``, ...) gets it back
    in the matching ``..._out``/``..._completed`` hook.
    """

    #: The app whose sensors this one belongs to (set by ``app.sensors.add``).
    app: App | None = None

    # -- messages and events ---------------------------------------------------------

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        """A message was fetched from ``tp``."""

    def on_messages_in(self, topic: str, messages: Sequence[Message]) -> None:
        """fluvial: a batch of messages of ``topic`` was fetched (by default calls
        :meth:`on_message_in` for each)."""
        on_message_in = self.on_message_in
        for message in messages:
            on_message_in(message.tp, message.offset, message)

    def on_stream_event_in(self, tp: TP, offset: int, stream: Stream[Any],
                           event: Event) -> dict[str, Any] | None:
        """A stream handed ``event`` to its agent."""
        return None

    def on_stream_event_out(self, tp: TP, offset: int, stream: Stream[Any], event: Event,
                            state: dict[str, Any] | None = None) -> None:
        """The agent finished with ``event`` (it asked for the next one)."""

    def on_stream_events(self, stream: Stream[Any], count: int, seconds: float) -> None:
        """fluvial: a stream's agent processed a run of ``count`` events in ``seconds``
        (overriding this replaces the per-event stream hooks for this sensor)."""

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        """Every stream that received the message has processed it."""

    def on_topic_buffer_full(self, tp: TP) -> None:
        """A stream's buffer for ``tp`` is full: its partitions are being paused."""

    # -- tables --------------------------------------------------------------------

    def on_table_get(self, table: Any, key: Any) -> None:
        """``table[key]`` was read."""

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        """``table[key] = value``."""

    def on_table_del(self, table: Any, key: Any) -> None:
        """``del table[key]``."""

    # -- commits and sends -----------------------------------------------------------

    def on_commit_initiated(self, consumer: Any) -> Any:
        """A checkpoint begins (changelogs, flush, offset commit)."""
        return None

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        """The checkpoint's offsets are committed."""

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int,
                          valsize: int) -> Any:
        """A message is being sent to ``topic`` (``message``: its key and value)."""
        return None

    def on_send_headers(self, topic: str, headers: list[tuple[str, bytes]]
                        ) -> list[tuple[str, bytes]]:
        """fluvial: the headers of a message about to be sent to ``topic`` (by the app,
        an agent or a ``group_by``); return them, changed or not (tracing adds its
        context)."""
        return headers

    def on_producer_flushed(self, seconds: float) -> None:
        """fluvial: a checkpoint waited ``seconds`` for the producer to deliver
        everything sent before it (at least once)."""

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        """A message sent was acknowledged by the broker."""

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        """A message could not be sent."""

    # -- rebalances and assignments --------------------------------------------------

    def on_assignment_start(self, assignor: Any) -> dict[str, Any]:
        return {}

    def on_assignment_error(self, assignor: Any, state: dict[str, Any],
                            exc: BaseException) -> None:
        """Processing an assignment failed."""

    def on_assignment_completed(self, assignor: Any, state: dict[str, Any]) -> None:
        """An assignment was processed."""

    def on_rebalance_start(self, app: App) -> dict[str, Any]:
        """A rebalance began (partitions revoked)."""
        return {}

    def on_rebalance_return(self, app: App, state: dict[str, Any]) -> None:
        """The new assignment arrived."""

    def on_rebalance_end(self, app: App, state: dict[str, Any]) -> None:
        """The new assignment is in effect."""

    # -- web -------------------------------------------------------------------------

    def on_web_request_start(self, app: App, request: Any, *,
                             view: Any = None) -> dict[str, Any]:
        return {}

    def on_web_request_end(self, app: App, request: Any, response: Any,
                           state: dict[str, Any], *, view: Any = None) -> None:
        """A request to the worker's web server was answered."""

    def asdict(self) -> dict[str, Any]:
        return {}


#: Hook name -> fluvial's batch replacement that a sensor may override instead.
_HOOKS = (
    "on_message_in", "on_messages_in", "on_stream_event_in", "on_stream_event_out",
    "on_stream_events", "on_message_out", "on_topic_buffer_full", "on_table_get",
    "on_table_set", "on_table_del", "on_commit_initiated", "on_commit_completed",
    "on_send_initiated", "on_send_headers", "on_send_completed", "on_send_error",
    "on_producer_flushed",
    "on_assignment_start",
    "on_assignment_error", "on_assignment_completed", "on_rebalance_start",
    "on_rebalance_return", "on_rebalance_end", "on_web_request_start", "on_web_request_end",
)


def _overrides(sensor: Sensor, *names: str) -> bool:
    cls = type(sensor)
    return any(getattr(cls, name) is not getattr(Sensor, name) for name in names)


class SensorDelegate:
    """``app.sensors``: the installed sensors, and the hooks the runtime calls.

    The runtime tests the flags below (``messages``, ``stream_runs``,
    ``stream_events``, ``tables``, ``sends``, ``send_headers``) before calling a hook, once per
    batch where there are batches; they are true only while a sensor that
    overrides the hook is installed.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self._sensors: list[Sensor] = []
        self._by_hook: dict[str, tuple[Sensor, ...]] = {}
        self.messages = False
        self.stream_runs = False
        self.stream_events = False
        self.tables = False
        self.sends = False
        self.web = False
        self.send_headers = False
        self.streams = False
        #: The sensors' states of the rebalance in progress (see :meth:`rebalance_started`).
        self._rebalance: dict[Sensor, Any] | None = None
        self._assignment: dict[Sensor, Any] | None = None
        self._refresh()

    def add(self, sensor: Sensor) -> None:
        """Install ``sensor`` (idempotent)."""
        if sensor in self._sensors:
            return
        if sensor.app is None:
            sensor.app = self.app
        self._sensors.append(sensor)
        self._refresh()

    def remove(self, sensor: Sensor) -> None:
        """Uninstall ``sensor`` (no error if it is not installed)."""
        if sensor in self._sensors:
            self._sensors.remove(sensor)
            self._refresh()

    def __iter__(self) -> Iterator[Sensor]:
        return iter(list(self._sensors))

    def __len__(self) -> int:
        return len(self._sensors)

    def __contains__(self, sensor: object) -> bool:
        return sensor in self._sensors

    def _refresh(self) -> None:
        by_hook: dict[str, list[Sensor]] = {name: [] for name in _HOOKS}
        for sensor in self._sensors:
            for name in _HOOKS:
                if _overrides(sensor, name):
                    by_hook[name].append(sensor)
            if _overrides(sensor, "on_message_in") and sensor not in by_hook["on_messages_in"]:
                by_hook["on_messages_in"].append(sensor)
            # A sensor with the run hook is told about runs, not single events.
            if _overrides(sensor, "on_stream_events"):
                for name in ("on_stream_event_in", "on_stream_event_out"):
                    if sensor in by_hook[name]:
                        by_hook[name].remove(sensor)
        self._by_hook = {name: tuple(found) for name, found in by_hook.items()}
        hooks = self._by_hook
        self.messages = bool(hooks["on_messages_in"])
        self.stream_runs = bool(hooks["on_stream_events"])
        self.stream_events = bool(hooks["on_stream_event_in"] or hooks["on_stream_event_out"]
                                  or hooks["on_message_out"])
        self.tables = bool(hooks["on_table_get"] or hooks["on_table_set"]
                           or hooks["on_table_del"])
        self.sends = bool(hooks["on_send_initiated"] or hooks["on_send_completed"]
                          or hooks["on_send_error"])
        self.web = bool(hooks["on_web_request_start"] or hooks["on_web_request_end"])
        self.send_headers = bool(hooks["on_send_headers"])
        self.streams = self.stream_runs or self.stream_events

    def _call(self, hook: str, *args: Any, **kwargs: Any) -> None:
        for sensor in self._by_hook[hook]:
            try:
                getattr(sensor, hook)(*args, **kwargs)
            except Exception:
                logger.exception("Sensor %r failed in %s", sensor, hook)

    def _call_with_state(self, hook: str, *args: Any, **kwargs: Any) -> dict[Sensor, Any]:
        states: dict[Sensor, Any] = {}
        for sensor in self._by_hook[hook]:
            try:
                states[sensor] = getattr(sensor, hook)(*args, **kwargs)
            except Exception:
                logger.exception("Sensor %r failed in %s", sensor, hook)
        return states

    def _finish(self, hook: str, states: dict[Sensor, Any], *args: Any,
                **kwargs: Any) -> None:
        for sensor in self._by_hook[hook]:
            try:
                getattr(sensor, hook)(*args, states.get(sensor), **kwargs)
            except Exception:
                logger.exception("Sensor %r failed in %s", sensor, hook)

    # -- the hooks the runtime calls -------------------------------------------------

    def on_messages_in(self, topic: str, messages: Sequence[Message]) -> None:
        self._call("on_messages_in", topic, messages)

    def on_stream_event_in(self, stream: Stream[Any], event: Event) -> dict[Sensor, Any]:
        message = event.message
        return self._call_with_state("on_stream_event_in", message.tp, message.offset,
                                     stream, event)

    def on_stream_event_out(self, stream: Stream[Any], event: Event,
                            states: dict[Sensor, Any]) -> None:
        message = event.message
        tp = message.tp
        for sensor in self._by_hook["on_stream_event_out"]:
            try:
                sensor.on_stream_event_out(tp, message.offset, stream, event,
                                           states.get(sensor))
            except Exception:
                logger.exception("Sensor %r failed in on_stream_event_out", sensor)
        if message.acked:
            self._call("on_message_out", tp, message.offset, message)

    def on_stream_events(self, stream: Stream[Any], count: int, seconds: float) -> None:
        self._call("on_stream_events", stream, count, seconds)

    def on_topic_buffer_full(self, tp: TP) -> None:
        self._call("on_topic_buffer_full", tp)

    def on_table_get(self, table: Any, key: Any) -> None:
        self._call("on_table_get", table, key)

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        self._call("on_table_set", table, key, value)

    def on_table_del(self, table: Any, key: Any) -> None:
        self._call("on_table_del", table, key)

    def on_commit_initiated(self, consumer: Any) -> dict[Sensor, Any]:
        return self._call_with_state("on_commit_initiated", consumer)

    def on_commit_completed(self, consumer: Any, states: dict[Sensor, Any]) -> None:
        self._finish("on_commit_completed", states, consumer)

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int,
                          valsize: int) -> dict[Sensor, Any]:
        return self._call_with_state("on_send_initiated", producer, topic, message,
                                     keysize, valsize)

    def on_send_headers(self, topic: str, headers: list[tuple[str, bytes]]
                        ) -> list[tuple[str, bytes]]:
        for sensor in self._by_hook["on_send_headers"]:
            try:
                headers = sensor.on_send_headers(topic, headers)
            except Exception:
                logger.exception("Sensor %r failed in on_send_headers", sensor)
        return headers

    def on_producer_flushed(self, seconds: float) -> None:
        self._call("on_producer_flushed", seconds)

    def on_send_completed(self, producer: Any, states: dict[Sensor, Any],
                          metadata: Any) -> None:
        for sensor in self._by_hook["on_send_completed"]:
            try:
                sensor.on_send_completed(producer, states.get(sensor), metadata)
            except Exception:
                logger.exception("Sensor %r failed in on_send_completed", sensor)

    def on_send_error(self, producer: Any, exc: BaseException,
                      states: dict[Sensor, Any]) -> None:
        for sensor in self._by_hook["on_send_error"]:
            try:
                sensor.on_send_error(producer, exc, states.get(sensor))
            except Exception:
                logger.exception("Sensor %r failed in on_send_error", sensor)

    def on_assignment_start(self, assignor: Any) -> dict[Sensor, Any]:
        return self._call_with_state("on_assignment_start", assignor)

    def on_assignment_error(self, assignor: Any, states: dict[Sensor, Any],
                            exc: BaseException) -> None:
        for sensor in self._by_hook["on_assignment_error"]:
            try:
                sensor.on_assignment_error(assignor, states.get(sensor) or {}, exc)
            except Exception:
                logger.exception("Sensor %r failed in on_assignment_error", sensor)

    def on_assignment_completed(self, assignor: Any, states: dict[Sensor, Any]) -> None:
        self._finish("on_assignment_completed", states, assignor)

    def on_rebalance_start(self, app: App) -> dict[Sensor, Any]:
        return self._call_with_state("on_rebalance_start", app)

    def on_rebalance_return(self, app: App, states: dict[Sensor, Any]) -> None:
        self._finish("on_rebalance_return", states, app)

    def on_rebalance_end(self, app: App, states: dict[Sensor, Any]) -> None:
        self._finish("on_rebalance_end", states, app)

    def on_web_request_start(self, app: App, request: Any, *,
                             view: Any = None) -> dict[Sensor, Any]:
        return self._call_with_state("on_web_request_start", app, request, view=view)

    def on_web_request_end(self, app: App, request: Any, response: Any,
                           states: dict[Sensor, Any], *, view: Any = None) -> None:
        for sensor in self._by_hook["on_web_request_end"]:
            try:
                sensor.on_web_request_end(app, request, response, states.get(sensor) or {},
                                          view=view)
            except Exception:
                logger.exception("Sensor %r failed in on_web_request_end", sensor)

    # -- rebalances, as the conductor sees them ----------------------------------------

    def rebalance_started(self) -> None:
        """Partitions are revoked: a rebalance begins."""
        if self._rebalance is None:
            self._rebalance = self.on_rebalance_start(self.app)

    def rebalance_returned(self) -> None:
        """The new assignment arrived (a first join starts and returns at once)."""
        self.rebalance_started()
        assert self._rebalance is not None
        self.on_rebalance_return(self.app, self._rebalance)
        self._assignment = self.on_assignment_start(self.app.conductor)

    def rebalance_ended(self, error: BaseException | None = None) -> None:
        """The new assignment is in effect (or failed with ``error``)."""
        rebalance, self._rebalance = self._rebalance, None
        assignment, self._assignment = self._assignment, None
        if assignment is not None:
            if error is None:
                self.on_assignment_completed(self.app.conductor, assignment)
            else:
                self.on_assignment_error(self.app.conductor, assignment, error)
        if rebalance is not None:
            self.on_rebalance_end(self.app, rebalance)

    # -- sampling ----------------------------------------------------------------------

    async def run_sampling(self, interval: float = 1.0) -> None:
        """Call ``sample()`` of every sensor that has one, every ``interval`` seconds
        (rates and averages); runs for the worker's lifetime."""
        clock = self.app.clock
        while True:
            await clock.sleep(interval)
            for sensor in list(self._sensors):
                sample = getattr(sensor, "sample", None)
                if sample is None:
                    continue
                try:
                    sample()
                except Exception:
                    logger.exception("Sensor %r failed to sample", sensor)
            await asyncio.sleep(0)
