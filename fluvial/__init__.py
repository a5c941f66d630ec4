"""fluvial: stream processing for Python on Apache Kafka, with the Faust programming model.

``import fluvial as faust`` runs a Faust program.
"""

from __future__ import annotations

from . import codecs, exceptions, models, serializers, windows
from ._version import __version__
from .agents import Agent
from .app import App
from .auth import GSSAPICredentials, OAuthCredentials, SASLCredentials, SSLCredentials
from .channels import Channel, Topic
from .clock import SystemClock, VirtualClock
from .events import Event, current_event
from .exceptions import FluvialError
from .models import FieldDescriptor, Record
from .sensors import Monitor, Sensor
from .serializers import Schema
from .services import Service
from .streams import Stream
from .tables import GlobalTable, SetGlobalTable, SetTable, Table
from .tables.windows import (
    HoppingWindow,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    Window,
)
from .types import TP, Message, RecordMetadata
from .worker import Worker


def uuid() -> str:
    """A random UUID as a string (Faust's ``faust.uuid()``)."""
    import uuid as _uuid

    return str(_uuid.uuid4())


__all__ = [
    "TP",
    "Agent",
    "App",
    "Channel",
    "Event",
    "FieldDescriptor",
    "FluvialError",
    "GSSAPICredentials",
    "GlobalTable",
    "HoppingWindow",
    "Message",
    "Monitor",
    "OAuthCredentials",
    "Record",
    "RecordMetadata",
    "SASLCredentials",
    "SSLCredentials",
    "Schema",
    "Sensor",
    "SetGlobalTable",
    "SetTable",
    "Service",
    "SessionWindow",
    "SlidingWindow",
    "Stream",
    "SystemClock",
    "Table",
    "Topic",
    "TumblingWindow",
    "VirtualClock",
    "Window",
    "Worker",
    "__version__",
    "codecs",
    "current_event",
    "exceptions",
    "models",
    "serializers",
    "uuid",
    "windows",
]
