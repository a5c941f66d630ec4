"""A :class:`~fluvial.types.Message` built cheaply from librdkafka's message.

Topic, partition, offset, key and value are copied on the consumer thread;
timestamp and headers, which the hot path seldom reads, are read from the
librdkafka message on first access (saving a tuple, a division and a C call
per message under the GIL).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Message as RawMessage

from ...types import Headers, Message

__all__ = ["KafkaMessage"]


class KafkaMessage(Message):
    """A fetched Kafka message; ``timestamp`` and ``headers`` are read on demand."""

    __slots__ = ("_headers", "_timestamp", "raw")

    def __init__(self, raw: RawMessage, topic: str, partition: int, offset: int,
                 key: bytes | None, value: bytes | None) -> None:
        self.raw = raw
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self._holds = 0
        self.event = None
        self._headers: Headers | None = None
        self._timestamp: float | None = None

    @property
    def timestamp(self) -> float:
        ts = self._timestamp
        if ts is None:
            ms: int = self.raw.timestamp()[1]
            ts = self._timestamp = ms / 1000.0 if ms >= 0 else 0.0
        return ts

    @timestamp.setter
    def timestamp(self, value: float) -> None:
        self._timestamp = value

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            raw: Any = self.raw.headers()
            headers = self._headers = list(raw) if raw else []
        return headers

    @headers.setter
    def headers(self, value: Headers) -> None:
        self._headers = value
