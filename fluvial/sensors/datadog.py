"""``DatadogMonitor``: the monitor's figures sent to a Datadog agent's DogStatsD over
UDP, with tags (Faust's ``faust.sensors.datadog.DatadogMonitor``)::

    app = faust.App('orders', monitor=DatadogMonitor(host='dd-agent', prefix='orders'))

The names are :class:`~fluvial.sensors.statsd.StatsdMonitor`'s; per-topic and
per-agent figures are tagged (``topic:orders``, ``agent:count``) instead of
folded into the name, and ``tags=`` adds tags to every line (``env:prod``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .statsd import StatsdMonitor, Tags, _clean, _number

__all__ = ["DatadogMonitor"]


class DatadogMonitor(StatsdMonitor):
    """Sends the monitor's figures to DogStatsD (UDP), tagged."""

    def __init__(self, host: str = "localhost", port: int = 8125, prefix: str = "faust-app",
                 rate: float = 1.0, tags: Mapping[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(host=host, port=port, prefix=prefix, rate=rate, **kwargs)
        self.constant_tags = [(k, str(v)) for k, v in (tags or {}).items()]

    def _line(self, name: str, value: float | int, kind: str, tags: Tags) -> str:
        rate = f"|@{self.rate:g}" if kind == "c" and self.rate < 1.0 else ""
        all_tags = [*self.constant_tags, *tags]
        tagged = ("|#" + ",".join(f"{k}:{_clean(v).replace(',', '_')}" for k, v in all_tags)
                  if all_tags else "")
        return f"{self.prefix}.{name}:{_number(value)}|{kind}{rate}{tagged}"
