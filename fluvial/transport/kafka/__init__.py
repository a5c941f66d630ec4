"""The ``kafka://`` transport on confluent-kafka (librdkafka) with fluvial's own asyncio bridge."""

from __future__ import annotations

from ._config import bootstrap_servers
from .consumer import KafkaConsumer
from .producer import KafkaProducer
from .transport import KafkaTransport

__all__ = ["KafkaConsumer", "KafkaProducer", "KafkaTransport", "bootstrap_servers"]
