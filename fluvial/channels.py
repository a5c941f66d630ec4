"""Channels and topics: where streams come from and where messages go.

A :class:`Channel` lives in memory and passes objects as they are. A
:class:`Topic` is a channel backed by the broker: its keys and values go
through the topic's :class:`~fluvial.serializers.Schema` to bytes and back.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import sys
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .buffers import EventBuffer
from .events import Event
from .exceptions import ImproperlyConfigured
from .serializers import Schema
from .types import Headers, Message, RecordMetadata, TopicSpec

if TYPE_CHECKING:
    from .app import App
    from .sensors import SensorDelegate
    from .streams import Stream

__all__ = ["Channel", "Topic", "TopicDeclarations"]

T = TypeVar("T")


class Channel(Generic[T]):
    """An in-memory channel: ``send`` hands the value to every stream reading it."""

    def __init__(
        self,
        app: App,
        *,
        schema: Schema | None = None,
        key_type: Any = None,
        value_type: Any = None,
        maxsize: int | None = None,
    ) -> None:
        self.app = app
        if schema is None:
            schema = Schema(key_type=key_type, value_type=value_type)
        self.schema = schema
        self.key_type = schema.key_type
        self.value_type = schema.value_type
        self.maxsize = maxsize or app.conf.stream_buffer_maxsize
        self._buffers: list[EventBuffer] = []
        self._offsets = itertools.count()
        #: Buffers made by ``stream()``, each read by one stream.
        self._stream_buffers: list[EventBuffer] = []
        #: Topics derived from this one by ``group_by``, by name: an actor that
        #: restarts gets the same topic, and the buffer its predecessor read.
        self.derived: dict[str, Topic[Any]] = {}

    @property
    def label(self) -> str:
        return f"<channel {id(self):#x}>"

    def __str__(self) -> str:
        return self.label

    # -- reading ---------------------------------------------------------

    def new_buffer(self) -> EventBuffer:
        """A new subscriber queue (one per stream, or per group of actors)."""
        buffer = EventBuffer(self.maxsize)
        self._buffers.append(buffer)
        return buffer

    def stream(self, **kwargs: Any) -> Stream[T]:
        from .streams import Stream

        # A buffer whose stream ended by a crash is read on (see ``Stream.release``).
        buffer = next((b for b in self._stream_buffers if b.released), None)
        if buffer is not None:
            buffer.released = False
        else:
            buffer = self.new_buffer()
            self._stream_buffers.append(buffer)
        return Stream(self, app=self.app, buffer=buffer, owns_buffer=True, **kwargs)

    def __aiter__(self) -> Any:
        return self.stream().__aiter__()

    # -- writing ---------------------------------------------------------

    async def send(
        self,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | Mapping[str, bytes] | None = None,
        *,
        schema: Schema | None = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        callback: Any = None,
        force: bool = False,
    ) -> asyncio.Future[RecordMetadata]:
        return self.send_soon(key, value, partition, timestamp, headers)

    def send_soon(
        self,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | Mapping[str, bytes] | None = None,
        **kwargs: Any,
    ) -> asyncio.Future[RecordMetadata]:
        offset = next(self._offsets)
        ts = self.app.clock.time() if timestamp is None else timestamp
        message = Message(self.label, partition or 0, offset, None, None, ts, _headers(headers))
        message.decoded_key = key
        message.decoded_value = value
        message.hold(len(self._buffers))
        for buffer in self._buffers:
            buffer.put(message)
        fut: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        fut.set_result(RecordMetadata(self.label, partition or 0, offset, ts))
        return fut

    async def put(self, event: Event) -> None:
        """Deliver an already-built event (used by the test utilities): streams
        hand out this very event."""
        message = event.message
        message.decoded_key = event.key
        message.decoded_value = event.value
        message.event = event
        message.hold(len(self._buffers))
        for buffer in self._buffers:
            buffer.put(message)

    async def declare(self) -> None:
        """Nothing to declare for an in-memory channel."""

    async def maybe_declare(self) -> None:
        await self.declare()


class Topic(Channel[T]):
    """A Kafka topic (or several, read together) with a schema."""

    def __init__(
        self,
        app: App,
        *,
        topics: Sequence[str] = (),
        pattern: str | None = None,
        schema: Schema | None = None,
        key_type: Any = None,
        value_type: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        partitions: int | None = None,
        retention: float | None = None,
        compacting: bool | None = None,
        deleting: bool | None = None,
        replicas: int | None = None,
        acks: bool = True,
        internal: bool = False,
        config: Mapping[str, Any] | None = None,
        maxsize: int | None = None,
        allow_empty: bool = False,
        has_prefix: bool = False,
        on_decode_error: str | None = None,
    ) -> None:
        if pattern is not None:
            if topics:
                raise ImproperlyConfigured("Give a topic either names or pattern=, not both")
            pattern = subscription_pattern(pattern)
        elif not topics:
            raise ImproperlyConfigured("A topic needs at least one name (or pattern=)")
        if schema is None:
            schema = Schema(
                key_type=key_type,
                value_type=value_type,
                key_serializer=key_serializer,
                value_serializer=value_serializer,
                allow_empty=allow_empty,
            )
        super().__init__(app, schema=schema, maxsize=maxsize)
        self.topics = tuple(topics)
        self.pattern = pattern
        self.partitions = partitions
        self.retention = retention
        self.compacting = compacting
        self.deleting = deleting
        self.replicas = replicas
        self.acks = acks
        self.internal = internal
        self.config = dict(config or {})
        self.has_prefix = has_prefix
        if on_decode_error is not None and on_decode_error not in ("stop", "skip", "dead_letter"):
            raise ImproperlyConfigured(
                f"on_decode_error={on_decode_error!r}: use 'stop', 'skip' or 'dead_letter'"
            )
        self.on_decode_error = on_decode_error
        self.key_serializer = schema.key_serializer
        self.value_serializer = schema.value_serializer
        self._encoders: tuple[Any, Any] | None = None
        self._declared = False
        #: Messages sent through this object (the monitor's ``messages_sent``).
        self.messages_sent = 0
        self._declaring: asyncio.Task[None] | None = None

    @property
    def label(self) -> str:
        return self.pattern or ",".join(self.topics)

    def get_topic_name(self) -> str:
        if self.pattern is not None:
            raise ImproperlyConfigured(
                f"Topic pattern {self.pattern!r} names no one topic: send to a topic by name")
        if len(self.topics) != 1:
            raise ImproperlyConfigured(f"Topic {self.label} has several names: send to one of them")
        return self.topics[0]

    def __repr__(self) -> str:
        return f"<Topic {self.label}>"

    # -- reading ---------------------------------------------------------

    def new_buffer(self) -> EventBuffer:
        buffer = EventBuffer(self.maxsize, self.topics)
        self.app.conductor.subscribe(self, buffer)
        return buffer

    # -- writing ---------------------------------------------------------

    def _encode(
        self,
        key: Any,
        value: Any,
        schema: Schema | None,
        key_serializer: Any,
        value_serializer: Any,
    ) -> tuple[bytes | None, bytes | None]:
        if schema is None and key_serializer is None and value_serializer is None:
            encoders = self._encoders
            if encoders is None:
                conf = self.app.conf
                encoders = self._encoders = (
                    self.schema.key_encoder(conf.key_serializer, channel=self),
                    self.schema.value_encoder(conf.value_serializer, channel=self),
                )
            return encoders[0](key), encoders[1](value)
        conf = self.app.conf
        schema = schema or self.schema
        k = schema.dumps_key(key, serializer=key_serializer,
                             default_serializer=conf.key_serializer, channel=self)
        v = schema.dumps_value(
            value, serializer=value_serializer, default_serializer=conf.value_serializer,
            channel=self,
        )
        return k, v

    async def send(
        self,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | Mapping[str, bytes] | None = None,
        *,
        schema: Schema | None = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        callback: Any = None,
        force: bool = False,
    ) -> asyncio.Future[RecordMetadata]:
        """Send a message; await the returned future for its :class:`RecordMetadata`."""
        await self.app.producer_ready()
        # A message to a topic that does not exist would wait in the producer
        # (and hold up the next checkpoint's flush): make sure it exists, once.
        if not self._declared:
            await self._ensure_exists()
        return self.send_soon(
            key,
            value,
            partition,
            timestamp,
            headers,
            schema=schema,
            key_serializer=key_serializer,
            value_serializer=value_serializer,
            callback=callback,
        )

    def send_soon(
        self,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | Mapping[str, bytes] | None = None,
        *,
        schema: Schema | None = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        callback: Any = None,
        **kwargs: Any,
    ) -> asyncio.Future[RecordMetadata]:
        if not self._declared:
            self._declare_soon()
        app = self.app
        if app.on_produce_message:
            app.on_produce_message.send(key=key, value=value, partition=partition,
                                        timestamp=timestamp, headers=headers)
        k, v = self._encode(key, value, schema, key_serializer, value_serializer)
        name = self.get_topic_name()
        producer = app.producer
        sensors = app.sensors
        sent_headers = _headers(headers)
        if sensors.send_headers:
            sent_headers = sensors.on_send_headers(name, sent_headers)
        fut = producer.send(name, k, v, partition=partition, timestamp=timestamp,
                            headers=sent_headers)
        self.messages_sent += 1
        if sensors.sends:
            states = sensors.on_send_initiated(producer, name, (k, v), len(k or b""),
                                               len(v or b""))
            fut.add_done_callback(partial(_send_done, sensors, producer, states))
        if callback is not None:
            fut.add_done_callback(callback)
        return fut

    # -- declaring ---------------------------------------------------------

    def spec(self, name: str) -> TopicSpec:
        conf = self.app.conf
        config: dict[str, str] = {k: str(v) for k, v in self.config.items()}
        policies = []
        if self.compacting:
            policies.append("compact")
        if self.deleting:
            policies.append("delete")
        if policies:
            config.setdefault("cleanup.policy", ",".join(policies))
        if self.retention is not None:
            config.setdefault("retention.ms", str(int(self.retention * 1000)))
        return TopicSpec(
            name=name,
            partitions=self.partitions or conf.topic_partitions,
            replicas=self.replicas or conf.topic_replication_factor,
            config=config,
        )

    async def declare(self) -> None:
        """Create the topic if it does not exist (checks the partition count if it does)."""
        if self.app.conf.topic_allow_declare:
            await self.app.transport.create_topics([self.spec(n) for n in self.topics])
        self._declared = True

    async def maybe_declare(self) -> None:
        """Declare the topic once per app run."""
        if not self._declared:
            await self.declare()

    async def _ensure_exists(self) -> None:
        """Before sending: create the topic if it is missing. An existing topic is
        taken as it is unless this Topic asked for a partition count."""
        if self.partitions is not None:
            await self.declare()
            return
        if self.app.conf.topic_allow_declare:
            counts = await self.app.transport.partition_counts(self.topics)
            missing = [self.spec(n) for n in self.topics if counts.get(n) is None]
            if missing:
                await self.app.transport.create_topics(missing)
        self._declared = True

    def _declare_soon(self) -> None:
        """From ``send_soon``: make sure the topic exists before its messages are due.

        In-process the broker creates it at once; on Kafka the declaration runs
        in the background (a message to a missing topic waits in the producer)
        and the next checkpoint waits for it before it flushes the producer.
        """
        if self.partitions is not None or self.app.conf.topic_allow_declare:
            # Without partitions= an existing topic's count is whatever it is.
            specs = [self.spec(n) for n in self.topics]
            if self.app.transport.declare_now(specs, check=self.partitions is not None):
                self._declared = True
                return
        else:
            self._declared = True  # nothing to declare; the topic must exist
            return
        if self._declaring is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._declaring = loop.create_task(self._ensure_exists(),
                                               name=f"declare:{self.get_topic_name()}")
            self.app.declarations.append(self._declaring)

    def derive(self, **kwargs: Any) -> Topic[Any]:
        """A copy of this topic with some attributes changed (Faust's ``derive``)."""
        prefix = kwargs.pop("prefix", "")
        suffix = kwargs.pop("suffix", "")
        params: dict[str, Any] = {
            "topics": [f"{prefix}{t}{suffix}" for t in self.topics],
            "schema": self.schema,
            "partitions": self.partitions,
            "retention": self.retention,
            "compacting": self.compacting,
            "deleting": self.deleting,
            "replicas": self.replicas,
            "acks": self.acks,
            "internal": self.internal,
            "config": self.config,
            "maxsize": self.maxsize,
            "on_decode_error": self.on_decode_error,
        }
        params.update(kwargs)
        if "key_type" in kwargs or "value_type" in kwargs:
            params.pop("schema")
        return self.app.topic(*params.pop("topics"), **params)

    derive_topic = derive


def _headers(headers: Headers | Mapping[str, bytes] | None) -> Headers:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(k, _as_bytes(v)) for k, v in headers.items()]
    return [(k, _as_bytes(v)) for k, v in headers]


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def subscription_pattern(pattern: str | re.Pattern[str]) -> str:
    """A regular expression subscription as librdkafka takes it: starting with ``^``.

    Every topic whose name it matches is read, including topics created while
    the worker runs (found at the next metadata refresh). librdkafka's regular
    expressions are POSIX-like: keep to ``. * + ? [] () |`` and anchors.
    """
    text = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
    if not isinstance(text, str) or not text:
        raise ImproperlyConfigured(f"pattern= must be a regular expression, got {pattern!r}")
    try:
        re.compile(text)
    except re.error as exc:
        raise ImproperlyConfigured(f"pattern={text!r} is not a regular expression: {exc}") from exc
    return text if text.startswith("^") else f"^{text}"


class TopicDeclarations:
    """The app's topic declarations by name: a second one that contradicts the first
    (partition count, key or value serializer) is refused, naming both."""

    def __init__(self) -> None:
        #: name -> setting -> (value, where it was declared)
        self._by_name: dict[str, dict[str, tuple[Any, str]]] = {}

    def check(self, topic: Topic[Any]) -> None:
        where = _declared_at()
        stated = {
            "partitions": topic.partitions,
            "key_serializer": _codec_name(topic.key_serializer),
            "value_serializer": _codec_name(topic.value_serializer),
        }
        for name in topic.topics:
            known = self._by_name.setdefault(name, {})
            for setting, value in stated.items():
                if value is None:
                    continue
                first = known.get(setting)
                if first is None:
                    known[setting] = (value, where)
                elif first[0] != value:
                    raise ImproperlyConfigured(
                        f"Topic {name!r} is declared with {setting}={first[0]!r} at {first[1]} "
                        f"and with {setting}={value!r} at {where}: declare it once (or the "
                        "same way), and share the Topic object")


def _codec_name(codec: Any) -> Any:
    return codec if codec is None or isinstance(codec, str) else repr(codec)


def _declared_at() -> str:
    """``file:line`` of the user code that declared a topic (outside fluvial)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(package + os.sep):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>"


def _send_done(sensors: SensorDelegate, producer: Any, states: dict[Any, Any],
               fut: asyncio.Future[RecordMetadata]) -> None:
    if fut.cancelled():
        return
    exc = fut.exception()
    if exc is None:
        sensors.on_send_completed(producer, states, fut.result())
    else:
        sensors.on_send_error(producer, exc, states)
