"""Streams: asynchronous iteration over the events of a channel.

A stream reads one :class:`~fluvial.buffers.EventBuffer`. It acknowledges
an event when the next one is requested, i.e. once the agent body has
finished with it, so offsets are committed only for processed events.
Operators (``filter``, ``group_by``, ``through`` …) return new streams;
repartitioning runs as a companion task owned by the stream that reads the
repartitioned topic.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .buffers import EventBuffer
from .events import Current, Event, _current_event
from .exceptions import ImproperlyConfigured
from .types import Message, RecordMetadata, SharedMessage

if TYPE_CHECKING:
    from .app import App
    from .channels import Channel, Topic

__all__ = ["Stream", "maybe_forward"]

logger = logging.getLogger(__name__)

_NOT_IN_TOPIC_NAMES = re.compile(r"[^A-Za-z0-9._-]")

T = TypeVar("T")
Step = tuple[str, Callable[[Any], Any], bool]  # (kind, function, is_async)


#: The streams an actor made since it (re)started: on a crash the supervisor
#: acknowledges the events they hold and releases their buffers.
_actor_streams: ContextVar[list[Stream[Any]] | None] = ContextVar(
    "fluvial_actor_streams", default=None)

#: The name of the agent whose actor is running (its streams report to sensors under it).
_actor_agent: ContextVar[str | None] = ContextVar("fluvial_actor_agent", default=None)

#: Sensors hear of an agent's events in runs of at most this many.
SENSOR_RUN_MAX = 1000


class Stream(Generic[T]):
    """An asynchronous iterator of values (``async for value in stream``)."""

    def __init__(
        self,
        channel: Channel[Any],
        *,
        app: App,
        buffer: EventBuffer,
        steps: Sequence[Step] = (),
        companions: Sequence[Callable[[], Awaitable[None]]] = (),
        noack: bool = False,
        prefix: str = "",
        owns_buffer: bool = False,
    ) -> None:
        self.channel = channel
        self.app = app
        self.buffer = buffer
        #: Made by ``channel.stream()`` (``group_by``, ``through``): the buffer is
        #: this stream's, released for the next one if its actor crashes.
        self.owns_buffer = owns_buffer
        actor_streams = _actor_streams.get()
        if actor_streams is not None:
            actor_streams.append(self)
        self._steps = tuple(steps)
        self._companions = tuple(companions)
        self._noack = noack
        self.prefix = prefix
        #: The message in hand, for ``current_event()`` (its Event is made on demand).
        self._current = Current(app)
        #: The event (its message) handed out and not yet acknowledged by this stream.
        self._pending: Message | None = None
        #: The events (messages) of the batch ``take`` handed out, not yet acknowledged.
        self._held: list[Message] = []
        #: The agent whose actor made this stream (None outside agents).
        self.agent_name = _actor_agent.get()

    def __repr__(self) -> str:
        return f"<Stream of {self.channel.label}>"

    @property
    def label(self) -> str:
        """What sensors call this stream: its agent and channel."""
        where = self.channel.label
        return f"{self.agent_name}: {where}" if self.agent_name else where

    def _derive(self, **changes: Any) -> Stream[Any]:
        params: dict[str, Any] = {
            "app": self.app,
            "buffer": self.buffer,
            "steps": self._steps,
            "companions": self._companions,
            "noack": self._noack,
            "prefix": self.prefix,
        }
        params.update(changes)
        return Stream(self.channel, **params)

    # -- acknowledgement ---------------------------------------------------

    @property
    def current_event(self) -> Event | None:
        """The event being processed (made when first asked for)."""
        return self._current.event()

    def ack(self, event: Event) -> bool:
        """Acknowledge ``event`` for this stream (for ``noack`` streams)."""
        return event.ack()

    def ack_pending(self) -> None:
        """Acknowledge the event (or ``take`` batch) in hand, after the agent crashed on it."""
        pending, self._pending = self._pending, None
        held, self._held = self._held, []
        if self._noack:
            return
        if pending is not None:
            pending.release()
        for message in held:
            message.release()

    def holds(self, message: Message) -> bool:
        """Whether ``message`` is the event (or in the ``take`` batch) in hand."""
        return self._pending is message or any(m is message for m in self._held)

    def take_back(self) -> list[Message]:
        """The event (or ``take`` batch) in hand, no longer held nor acknowledged:
        the agent raised on it and retries it."""
        pending, self._pending = self._pending, None
        held, self._held = self._held, []
        return held or ([pending] if pending is not None else [])

    def release(self) -> None:
        """Its actor crashed: a restarted actor's stream of this channel reads on
        from this stream's buffer (a new one would leave it subscribed, unread)."""
        if self.owns_buffer:
            self.buffer.released = True

    def noack(self) -> Stream[T]:
        """A stream that leaves acknowledging to the caller (``event.ack()``)."""
        return self._derive(noack=True)

    # -- iteration ---------------------------------------------------------
    #
    # The buffer queues messages whose key and value are decoded
    # (``decoded_key``, ``decoded_value``). Iterating values makes no Event:
    # ``self._current`` (in the task's context) points at the message in hand,
    # and ``current_event()`` / ``stream.current_event`` make its Event the
    # first time they are asked.

    async def _companion_tasks(self) -> list[asyncio.Task[None]]:
        tasks = []
        for companion in self._companions:
            task = asyncio.ensure_future(companion())
            task.add_done_callback(self._companion_done)
            tasks.append(task)
        return tasks

    def _companion_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.buffer.fail(task.exception())  # type: ignore[arg-type]

    async def _stop_companions(self, tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def events(self) -> AsyncIterator[Event]:
        """Iterate over events (key, value, headers and the message)."""
        if self._steps:
            return self._events()
        return self._iterate(_EVENTS)

    def _messages(self) -> AsyncIterator[Message]:
        """The messages in hand one after the other (decoded key and value set, a
        ``map`` step's result in a copy): what forwarders move on, without Events."""
        if self._steps:
            return self._mapped()
        return self._iterate(_MESSAGES)

    async def _mapped(self) -> AsyncIterator[Message]:
        async for event in self._events():
            yield _copy(event)

    def _iterate(self, kind: int) -> AsyncIterator[Any]:
        # One generator, which runs the companions (group_by's forwarder) itself.
        # Sensors installed before the stream starts (the monitor is): one
        # generator level either way.
        companions = bool(self._companions)
        if self.app.sensors.streams:
            return self._sensed(kind, companions=companions)
        return self._fast(kind, companions=companions)

    async def _events(self) -> AsyncIterator[Event]:
        buffer = self.buffer
        items = buffer.items
        steps = self._steps
        noack = self._noack
        sensors = self.app.sensors
        current = self._current
        get_current = _current_event.get
        set_current = _current_event.set
        tasks = await self._companion_tasks()
        try:
            while True:
                pending = self._pending
                if pending is not None:
                    self._pending = None
                    if not noack:
                        pending.release()
                if items and buffer.error is None:
                    message = buffer.get_nowait()
                else:
                    got = None if sensors.streams else await buffer.get()
                    if got is None or sensors.streams:
                        if got is not None:
                            items.appendleft(got)
                        event: Event
                        async for event in self._sensed(_EVENTS):
                            if steps and not await self._apply_steps(event):
                                continue
                            yield event
                        continue
                    message = got
                assert message is not None
                self._pending = message
                current.message = message
                if get_current() is not current:
                    set_current(current)
                event = current.event_of(message)
                if steps and not await self._apply_steps(event):
                    continue
                yield event
        finally:
            # Not acknowledged here: leaving the loop (a break, a crash, a
            # cancelled actor at shutdown) does not make the event processed.
            # The supervisor acknowledges the event an actor crashed on.
            await self._stop_companions(tasks)

    async def _apply_steps(self, event: Event) -> bool:
        """Run filters and maps; False when a filter drops the event."""
        value = event.value
        for kind, fun, is_async in self._steps:
            result = fun(value)
            if is_async:
                result = await result
            if kind == "filter":
                if not result:
                    return False
            else:
                value = result
        event.value = value
        return True

    async def _fast(self, kind: int, companions: bool = False) -> AsyncIterator[Any]:
        """The hot path: no steps. Yields values (``_VALUES``), events (``_EVENTS``,
        made here) or the messages (``_MESSAGES``). One generator per stream, which
        also runs the stream's companions (group_by's forwarder), if any."""
        buffer = self.buffer
        items = buffer.items
        noack = self._noack
        current = self._current
        get_current = _current_event.get
        set_current = _current_event.set
        low_water = buffer.maxsize >> 1
        sensors = self.app.sensors
        tasks = await self._companion_tasks() if companions else []
        try:
            while True:
                pending = self._pending
                if pending is not None:
                    self._pending = None
                    if not noack:
                        pending.release()
                if items:
                    message = items.popleft()
                    if buffer.draining and len(items) <= low_water:
                        buffer.drain()
                else:
                    # Sensors are looked for only here, when the buffer ran empty:
                    # once per batch.
                    got = None if sensors.streams else await buffer.get()
                    if got is None or sensors.streams:
                        if got is not None:
                            items.appendleft(got)  # arrived as a sensor came: it hears of it
                        async for item in self._sensed(kind):
                            yield item
                        continue
                    message = got
                self._pending = message
                current.message = message
                if get_current() is not current:
                    set_current(current)
                if kind == _VALUES:
                    yield message.decoded_value
                elif kind == _EVENTS:
                    yield current.event_of(message)
                else:
                    yield message
        finally:
            await self._stop_companions(tasks)

    async def _sensed(self, kind: int, companions: bool = False) -> AsyncIterator[Any]:
        """``_fast``, told to the sensors: runs of events (``on_stream_events``), and
        each event to sensors with per-event hooks (which sensors listen is looked at
        again each time the buffer runs empty)."""
        buffer = self.buffer
        items = buffer.items
        noack = self._noack
        low_water = buffer.maxsize >> 1
        app = self.app
        sensors = app.sensors
        current = self._current
        get_current = _current_event.get
        set_current = _current_event.set
        clock = time.perf_counter
        run_max = SENSOR_RUN_MAX
        per_event = sensors.stream_events
        runs = sensors.stream_runs
        states: dict[Any, Any] = {}
        count = 0
        started = 0.0
        tasks = await self._companion_tasks() if companions else []
        try:
            while True:
                pending = self._pending
                if pending is not None:
                    self._pending = None
                    # Its event before the release, which lets go of its key and value.
                    done = current.event_of(pending) if per_event else None
                    if not noack:
                        pending.release()
                    if done is not None:
                        sensors.on_stream_event_out(self, done, states)
                if items and count < run_max:
                    message = items.popleft()
                    if buffer.draining and len(items) <= low_water:
                        buffer.drain()
                    count += 1
                else:
                    # A run ends: at most run_max events, or the buffer ran empty.
                    if count and runs:
                        sensors.on_stream_events(self, count, clock() - started)
                    count = 0
                    if items and buffer.error is None:
                        message = items.popleft()
                        if buffer.draining and len(items) <= low_water:
                            buffer.drain()
                    else:
                        # Without sensors now, the loop goes on as the plain one
                        # (never returning: the caller would nest another generator).
                        message = await buffer.get()
                        per_event = sensors.stream_events
                        runs = sensors.stream_runs
                    count = 1
                    started = clock()
                self._pending = message
                current.message = message
                if get_current() is not current:
                    set_current(current)
                if per_event:
                    states = sensors.on_stream_event_in(self, current.event_of(message))
                if kind == _VALUES:
                    yield message.decoded_value
                elif kind == _EVENTS:
                    yield current.event_of(message)
                else:
                    yield message
        finally:
            # The run under way when the agent crashed or stopped, and the event in
            # hand (per-event sensors close what they opened for it).
            try:
                if count and runs:
                    sensors.on_stream_events(self, count, clock() - started)
                if per_event and self._pending is not None:
                    sensors.on_stream_event_out(self, current.event_of(self._pending), states)
            finally:
                await self._stop_companions(tasks)

    async def _values(self) -> AsyncIterator[T]:
        async for event in self.events():
            yield event.value

    def __aiter__(self) -> AsyncIterator[T]:
        if not self._steps:
            return self._iterate(_VALUES)
        return self._values()


    async def items(self) -> AsyncIterator[tuple[Any, T]]:
        """Iterate over ``(key, value)`` pairs."""
        async for event in self.events():
            yield event.key, event.value

    async def enumerate(self, start: int = 0) -> AsyncIterator[tuple[int, T]]:
        """Iterate over ``(index, value)`` pairs."""
        index = start
        async for value in self:
            yield index, value
            index += 1

    def take(self, max_: int, within: float) -> AsyncIterator[list[T]]:
        """Yield lists of up to ``max_`` values, waiting at most ``within`` seconds
        after the first value of a list for the rest of it.

        The events of a list are acknowledged when the next list is requested.
        """
        return self._take(max_, within, _value_of)

    def take_events(self, max_: int, within: float) -> AsyncIterator[list[Event]]:
        """Like :meth:`take`, with the events (key, value, headers, message)."""
        current = self._current
        return self._take(max_, within, lambda message, value: current.event_of(message))

    def take_with_timestamp(self, max_: int, within: float,
                            timestamp_field_name: str) -> AsyncIterator[list[Any]]:
        """Like :meth:`take`, each value as ``{"value": value, <timestamp_field_name>:
        the message's timestamp}`` (Faust's shape)."""
        def pick(message: Message, value: Any) -> Any:
            return {"value": value, timestamp_field_name: message.timestamp}
        return self._take(max_, within, pick)

    def noack_take(self, max_: int, within: float) -> AsyncIterator[list[T]]:
        """Like :meth:`take` on a :meth:`noack` stream: acknowledging the events
        (``event.ack()``) is left to the caller."""
        return self.noack()._take(max_, within, _value_of)

    async def _take(self, max_: int, within: float,
                    pick: Callable[[Message, Any], Any]) -> AsyncIterator[list[Any]]:
        if max_ < 1:
            raise ImproperlyConfigured("take(max_) needs max_ >= 1")
        buffer = self.buffer
        clock = self.app.clock
        current = self._current
        tasks = await self._companion_tasks()
        try:
            while True:
                held, self._held = self._held, []
                if not self._noack:
                    for message in held:
                        message.release()
                values: list[Any] = []
                deadline: float | None = None
                while len(values) < max_:
                    maybe = buffer.get_nowait()
                    if maybe is None:
                        if deadline is None:
                            message = await buffer.get()
                        else:
                            remaining = deadline - clock.monotonic()
                            if remaining <= 0 or not await buffer.wait_for_event(remaining, clock):
                                break
                            continue
                    else:
                        message = maybe
                    self._held.append(message)
                    current.message = message
                    if _current_event.get() is not current:
                        _current_event.set(current)
                    value = message.decoded_value
                    if self._steps:
                        event = current.event_of(message)
                        if not await self._apply_steps(event):
                            continue
                        value = event.value
                    values.append(pick(message, value))
                    if deadline is None:
                        deadline = clock.monotonic() + within
                if values:
                    yield values
        finally:
            for task in tasks:
                task.cancel()

    # -- operators -----------------------------------------------------------

    def filter(self, fun: Callable[[T], Any]) -> Stream[T]:
        """Only the values for which ``fun(value)`` is true (sync or async)."""
        return self._derive(steps=(*self._steps, ("filter", fun, _is_async(fun))))

    def add_processor(self, fun: Callable[[T], Any]) -> None:
        """Transform every value with ``fun`` before the agent sees it."""
        self._steps = (*self._steps, ("map", fun, _is_async(fun)))

    def group_by(
        self,
        key: Any,
        *,
        name: str | None = None,
        topic: Topic[Any] | None = None,
        partitions: int | None = None,
    ) -> Stream[T]:
        """Repartition the stream by a new key, through an internal topic.

        ``key`` is a model field (``Order.account_id``) or a function of the
        value; a function needs ``name=`` for the topic's name. The topic is
        named as Faust names it, ``{agent}-{source}-{name}-repartition`` in an
        agent (``{source}-{name}-repartition`` elsewhere), so that a worker
        taking over from a Faust worker reads what Faust forwarded; ``topic=``
        gives it instead.
        """
        from .channels import Topic

        if not isinstance(self.channel, Topic):
            raise ImproperlyConfigured("group_by needs a stream over a topic")
        if topic is None:
            if name is None:
                ident = getattr(key, "ident", None)
                if ident is None:
                    raise ImproperlyConfigured(
                        "group_by with a function needs name= (the repartition topic suffix)"
                    )
                name = str(ident)
            prefix = ""
            if self.prefix and not self.channel.has_prefix:
                # An agent defined in a function is ``module.f.<locals>.agent``: a
                # name Kafka refuses (Faust fails on it), so ``<locals>`` -> ``_locals_``.
                prefix = _NOT_IN_TOPIC_NAMES.sub("_", self.prefix) + "-"
            topic = self.channel.derive(
                topics=[f"{prefix}{self.channel.topics[0]}-{name}-repartition"],
                partitions=partitions,
                internal=True,
                has_prefix=bool(prefix) or self.channel.has_prefix,
            )
        cached = self.channel.derived.get(topic.get_topic_name())
        if cached is not None and cached.partitions == topic.partitions:
            topic = cached  # a restarted actor: the same topic, and its buffer
        else:
            self.channel.derived[topic.get_topic_name()] = topic
        get_key = _key_function(key)
        key_is_async = _is_async(get_key)
        source = self
        # The value is forwarded untouched: reuse its bytes unless a step may have
        # changed it or the repartition topic encodes values differently.
        reuse_bytes = topic.schema is self.channel.schema and not any(
            kind == "map" for kind, _, _ in self._steps
        )

        async def forward() -> None:
            app = self.app
            await app.producer_ready()
            await topic.maybe_declare()
            produce = app.producer.send_soon
            name = topic.get_topic_name()
            encode_key = topic.schema.key_encoder(app.conf.key_serializer)
            encode_value = topic.schema.value_encoder(app.conf.value_serializer)
            sensors = app.sensors
            async for message in source._messages():
                value = message.decoded_value
                new_key = await get_key(value) if key_is_async else get_key(value)
                headers = message.headers
                if sensors.send_headers:
                    headers = sensors.on_send_headers(name, list(headers))
                produce(
                    name,
                    encode_key(new_key),
                    message.value if reuse_bytes else encode_value(value),
                    # None for none: librdkafka builds no header list for it.
                    headers=headers or None,
                    timestamp=message.timestamp,
                )

        return topic.stream(companions=(forward,))

    def through(self, channel: str | Channel[Any]) -> Stream[Any]:
        """Forward every event to ``channel`` and read the result from there."""
        target = self.app.resolve_channel(channel)
        source = self

        async def forward() -> None:
            await self.app.producer_ready()
            await target.maybe_declare()
            async for message in source._messages():
                target.send_soon(message.decoded_key, message.decoded_value,
                                 headers=message.headers)

        return target.stream(companions=(forward,))

    def echo(self, *channels: str | Channel[Any]) -> Stream[T]:
        """Also send every value to ``channels``; the stream itself is unchanged."""
        targets = [self.app.resolve_channel(c) for c in channels]

        def send(value: T) -> T:
            current = _current_event.get()
            message = current.message if current is not None else None
            key = message.decoded_key if message is not None else None
            for target in targets:
                target.send_soon(key, value)
            return value

        return self._derive(steps=(*self._steps, ("map", send, False)))

    def combine(self, *nodes: Stream[Any]) -> Stream[Any]:
        """One stream of the events of this stream and of ``nodes`` (``a & b``), in the
        order they arrive; each event is acknowledged when the combined stream is done
        with it."""
        from .channels import Channel

        merged: Channel[Any] = Channel(self.app)
        sources = [self, *nodes]
        combined: list[Stream[Any]] = []

        def forwarder(source: Stream[Any]) -> Callable[[], Awaitable[None]]:
            async def forward() -> None:
                buffer = combined[0].buffer
                # The combined stream acknowledges: the sources hand events on as they are.
                async for message in source.noack()._messages():
                    while buffer.full:
                        await asyncio.sleep(0.005)
                    buffer.put(message)
            return forward

        stream: Stream[Any] = merged.stream(companions=[forwarder(s) for s in sources])
        combined.append(stream)
        return stream

    def __and__(self, other: Stream[Any]) -> Stream[Any]:
        return self.combine(other)

    async def send_to(self, channel: Channel[Any], value: Any) -> asyncio.Future[RecordMetadata]:
        return await channel.send(value=value)

    # -- joins (see fluvial/joins.py) -------------------------------------------------

    def join(self, other: Any, *, key: Any = None, within: float | None = None) -> Stream[Any]:
        """Inner join with a table (``(value, row)``) or, ``within`` seconds, a stream."""
        from .joins import join

        return join(self, other, "inner", key=key, within=within)

    inner_join = join

    def left_join(self, other: Any, *, key: Any = None,
                  within: float | None = None) -> Stream[Any]:
        """Every value, with the table's row or the matching stream values (or None)."""
        from .joins import join

        return join(self, other, "left", key=key, within=within)

    def outer_join(self, other: Any, *, key: Any = None,
                   within: float | None = None) -> Stream[Any]:
        """Stream-stream join that also yields unmatched values of either side."""
        from .joins import join

        return join(self, other, "outer", key=key, within=within)


#: What ``Stream._fast`` and ``Stream._sensed`` yield.
_VALUES, _EVENTS, _MESSAGES = 0, 1, 2


def _value_of(message: Message, value: Any) -> Any:
    return value


def _copy(event: Event) -> SharedMessage:
    """``event``'s message to queue once more, with the event's key and value."""
    copy = SharedMessage(event.message)
    copy.decoded_key = event.key
    copy.decoded_value = event.value
    return copy


def _is_async(fun: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fun) or inspect.iscoroutinefunction(
        getattr(fun, "__call__", None)  # noqa: B004
    )


def _key_function(key: Any) -> Callable[[Any], Any]:
    fast = getattr(key, "getter", None)
    if fast is not None:
        return fast()  # type: ignore[no-any-return]
    getter = getattr(key, "getattr", None)
    if getter is not None:
        return getter  # type: ignore[no-any-return]
    if callable(key):
        return key  # type: ignore[no-any-return]
    raise ImproperlyConfigured(f"group_by key must be a model field or a function, not {key!r}")


async def maybe_forward(value: Any, channel: Channel[Any]) -> Any:
    """Forward ``value`` to ``channel`` (an event as its original message); return it."""
    if isinstance(value, Event):
        await value.forward(channel)
    else:
        await channel.send(value=value)
    return value
