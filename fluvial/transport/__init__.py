"""Message transports: ``memory://`` (in-process) and ``kafka://`` (Apache Kafka)."""

from __future__ import annotations

from typing import Any

from ..exceptions import ImproperlyConfigured
from ..types import TransportT

__all__ = ["by_url"]


def by_url(url: str, **config: Any) -> TransportT:
    """Make the transport for a broker URL (``memory://`` or ``kafka://host:port``).

    Several Kafka bootstrap servers are separated by ``;`` or ``,``.
    """
    scheme, sep, _ = url.partition("://")
    if not sep:
        scheme = "kafka"
    if scheme == "memory":
        from .memory import MemoryTransport

        return MemoryTransport(url)
    if scheme == "kafka":
        from .kafka import KafkaTransport

        return KafkaTransport(url, **config)
    raise ImproperlyConfigured(
        f"Unknown broker URL scheme {scheme!r} in {url!r}: use memory:// or kafka://host:port"
    )
