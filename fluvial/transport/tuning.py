"""Faust's producer, consumer and broker settings as librdkafka configuration.

Settings left at ``None`` are not passed, so librdkafka's (or fluvial's
tuned) defaults stand; see the README's settings table for each mapping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["client_settings", "consumer_settings", "producer_settings"]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def client_settings(conf: Settings) -> dict[str, Any]:
    """What every client (producer, consumers, admin) gets."""
    config: dict[str, Any] = {}
    if conf.broker_request_timeout is not None:
        config["socket.timeout.ms"] = _ms(conf.broker_request_timeout)
    if conf.broker_metadata_max_age is not None:
        config["metadata.max.age.ms"] = _ms(conf.broker_metadata_max_age)
    if conf.broker_connections_max_idle is not None:
        config["connections.max.idle.ms"] = _ms(conf.broker_connections_max_idle)
    return config


def consumer_settings(conf: Settings) -> dict[str, Any]:
    """What every consumer (the group's, standby, recovery, global tables) gets."""
    config: dict[str, Any] = {}
    if conf.consumer_max_fetch_size is not None:
        config["max.partition.fetch.bytes"] = conf.consumer_max_fetch_size
    if conf.consumer_prefetch_size is not None:
        config["queued.max.messages.kbytes"] = -(-conf.consumer_prefetch_size // 1024)
    if conf.consumer_prefetch_records is not None:
        config["queued.min.messages"] = conf.consumer_prefetch_records
    if conf.broker_check_crcs is not None:
        config["check.crcs"] = conf.broker_check_crcs
    return config


def producer_settings(conf: Settings) -> dict[str, Any]:
    """The app's producer (the transactional one takes these too, with ``acks=all``)."""
    config: dict[str, Any] = {"linger.ms": conf.linger_ms}
    if conf.producer_acks == -1:
        config["acks"] = "all"
    else:
        # librdkafka's idempotence (fluvial's default) requires acks=all.
        config["acks"] = conf.producer_acks
        config["enable.idempotence"] = False
    if conf.producer_compression_type is not None:
        config["compression.type"] = conf.producer_compression_type
    if conf.producer_max_request_size is not None:
        config["message.max.bytes"] = conf.producer_max_request_size
    if conf.producer_max_batch_size is not None:
        config["batch.size"] = conf.producer_max_batch_size
    if conf.producer_buffer_memory is not None:
        config["queue.buffering.max.kbytes"] = -(-conf.producer_buffer_memory // 1024)
    if conf.producer_request_timeout is not None:
        config["message.timeout.ms"] = _ms(conf.producer_request_timeout)
    return config
