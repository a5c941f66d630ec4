"""fluvial: stream processing for Python on Apache Kafka, with the Faust programming model.

``import fluvial as faust`` runs a Faust program.
"""

from __future__ import annotations

from . import codecs, exceptions, models, serializers
from ._version import __version__
from .agents import Agent
from .app import App
from .auth import GSSAPICredentials, OAuthCredentials, SASLCredentials, SSLCredentials
from .channels import Channel, Topic
from .clock import SystemClock, VirtualClock
from .events import Event, current_event
from .exceptions import FluvialError
from .models import FieldDescriptor, Record
from .serializers import Schema
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
    "OAuthCredentials",
    "Record",
    "RecordMetadata",
    "SASLCredentials",
    "SSLCredentials",
    "Schema",
    "SetGlobalTable",
    "SetTable",
    "SessionWindow",
    "SlidingWindow",
    "Stream",
    "SystemClock",
    "Table",
    "Topic",
    "TumblingWindow",
    "VirtualClock",
    "Window",
    "__version__",
    "codecs",
    "current_event",
    "exceptions",
    "models",
    "serializers",
]
