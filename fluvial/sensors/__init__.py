"""Sensors and monitors (``faust.Sensor``, ``faust.sensors.Monitor``).

Monitors sending to statsd and Datadog are in :mod:`fluvial.sensors.statsd`
and :mod:`fluvial.sensors.datadog`; the Prometheus page in
:mod:`fluvial.sensors.prometheus`.
"""

from .base import Sensor, SensorDelegate
from .monitor import Monitor

__all__ = ["Monitor", "Sensor", "SensorDelegate"]
