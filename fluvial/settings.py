"""App settings: one typed, frozen object.

Names follow Faust (``broker``, ``broker_commit_interval`` …) so Faust apps
keep their ``App(...)`` calls. Every value comes from, in this order of
precedence: a command-line option, a ``FLUVIAL_<NAME>`` environment
variable, the ``App(...)`` argument, the default.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import tzinfo
from pathlib import Path
from typing import Any, get_type_hints
from zoneinfo import ZoneInfo

from .exceptions import ImproperlyConfigured

__all__ = ["ENV_PREFIX", "Settings"]

logger = logging.getLogger(__name__)

ENV_PREFIX = "FLUVIAL_"

GUARANTEES = ("at_least_once", "exactly_once")
DECODE_ERROR_POLICIES = ("stop", "skip", "dead_letter")
SUPERVISOR_STRATEGIES = ("restart", "stop")
OFFSET_RESETS = ("earliest", "latest")


@dataclass(frozen=True)
class Settings:
    """Everything an app is configured with (``app.conf``)."""

    id: str
    broker: str = "kafka://localhost:9092"
    store: str = "memory://"
    processing_guarantee: str = "at_least_once"
    topic_partitions: int = 8
    topic_replication_factor: int = 1
    topic_allow_declare: bool = True
    table_standby_replicas: int = 1
    broker_commit_interval: float = 2.8
    broker_commit_every: int = 10_000
    broker_max_poll_records: int = 10_000
    broker_client_id: str = "fluvial"
    #: Seconds without a heartbeat before the group gives a worker's partitions to others.
    broker_session_timeout: float = 60.0
    broker_heartbeat_interval: float = 3.0
    #: Seconds a worker may go without fetching before it is considered stuck.
    broker_max_poll_interval: float = 1000.0
    #: SASLCredentials / SSLCredentials / ... (fluvial.auth) or a mapping of librdkafka settings.
    broker_credentials: Any = None
    stream_buffer_maxsize: int = 4096
    consumer_auto_offset_reset: str = "earliest"
    consumer_group_instance_id: str | None = None
    key_serializer: str = "raw"
    value_serializer: str = "json"
    #: Serve HTTP (views, table routes, websockets, /metrics) from every worker.
    web_enabled: bool = True
    web_port: int = 6066
    web_bind: str = "0.0.0.0"
    web_host: str = "localhost"
    #: Run the web server in a thread of its own (views then run off the worker's loop).
    web_in_thread: bool = False
    #: Starlette ``CORSMiddleware`` options (``{"allow_origins": ["*"]}``); None: no CORS.
    web_cors_options: Mapping[str, Any] | None = None
    #: Built-in pages that read tables (``/table/{name}/...``).
    web_tables_enabled: bool = True
    #: Largest request body a view accepts, in bytes (larger: 413).
    web_max_request_size: int = 1_048_576
    #: Seconds a request forwarded to the worker owning a key may take (else 503).
    web_forward_timeout: float = 5.0
    #: The URL other workers reach this one at (``app.router``); default
    #: ``http://{web_host}:{web_port}``. Must differ between the workers of an app.
    canonical_url: str = ""
    timezone: str = "UTC"
    version: int = 1
    datadir: str = "{conf.id}-data"
    tabledir: str = "tables"
    agent_supervisor: str = "restart"
    decode_error_policy: str = "stop"
    dead_letter_topic: str = "{conf.id}-dead-letter"
    reply_to: str = ""
    reply_expires: float = 86_400.0
    producer_linger_ms: int = 5
    producer_acks: str = "all"
    extra: Mapping[str, Any] = field(default_factory=dict)
    # -- schema registry (avro, protobuf and json_schema codecs) --
    #: URL of a Confluent-compatible schema registry (``http://host:8081``).
    schema_registry_url: str = ""
    #: Basic-auth credentials for the registry, ``USER:PASSWORD`` ("" for none).
    schema_registry_basic_auth: str = ""
    #: Register a topic's schema on first use; off: it must be registered already.
    schema_registry_auto_register: bool = True
    #: How subjects are named: ``topic`` ({topic}-value), ``record`` or ``topic_record``.
    schema_registry_subject_strategy: str = "topic"

    def __post_init__(self) -> None:
        self._check("processing_guarantee", GUARANTEES)
        self._check("decode_error_policy", DECODE_ERROR_POLICIES)
        self._check("agent_supervisor", SUPERVISOR_STRATEGIES)
        self._check("consumer_auto_offset_reset", OFFSET_RESETS)
        if not self.id:
            raise ImproperlyConfigured("App id must be a non-empty string")
        for name in ("topic_partitions", "topic_replication_factor", "stream_buffer_maxsize"):
            if getattr(self, name) < 1:
                raise ImproperlyConfigured(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.broker_commit_interval <= 0:
            raise ImproperlyConfigured("broker_commit_interval must be > 0 seconds")
        if not 0 < self.broker_heartbeat_interval < self.broker_session_timeout:
            raise ImproperlyConfigured(
                "broker_heartbeat_interval must be > 0 and below broker_session_timeout "
                f"(got {self.broker_heartbeat_interval:g} s and {self.broker_session_timeout:g} s)"
            )
        if not self.canonical_url:
            object.__setattr__(self, "canonical_url", self._default_canonical_url())
        try:
            ZoneInfo(self.timezone)
        except (KeyError, ValueError) as exc:
            raise ImproperlyConfigured(f"Unknown timezone {self.timezone!r}") from exc

    def _check(self, name: str, allowed: tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value not in allowed:
            raise ImproperlyConfigured(
                f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}"
            )

    # -- derived values (units in the names) ---------------------------

    @property
    def commit_interval_s(self) -> float:
        return self.broker_commit_interval

    @property
    def broker_url(self) -> str:
        return self.broker

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    @property
    def appdir(self) -> Path:
        return Path(self.datadir.format(conf=self)) / f"v{self.version}"

    @property
    def table_path(self) -> Path:
        return self.appdir / self.tabledir

    @property
    def dead_letter_topic_name(self) -> str:
        return self.dead_letter_topic.format(conf=self)

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"

    def _default_canonical_url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}"

    def replace(self, **changes: Any) -> Settings:
        if "canonical_url" not in changes and self.canonical_url == self._default_canonical_url():
            changes["canonical_url"] = ""  # derived: follows web_host/web_port
        return dataclasses.replace(self, **changes)

    # -- building from sources -------------------------------------------

    @classmethod
    def from_sources(
        cls,
        id: str,
        arguments: Mapping[str, Any],
        *,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Merge default < ``App(...)`` arguments < environment < command line."""
        known = {f.name for f in fields(cls)} - {"id", "extra"}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for name, value in arguments.items():
            if name in known:
                values[name] = value
            else:
                extra[name] = value
        if extra:
            logger.warning("Ignoring settings fluvial does not know: %s", ", ".join(sorted(extra)))
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        for name in known:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = _parse_env(name, raw, hints[name])
        for name, value in (overrides or {}).items():
            if value is None:
                continue
            if name not in known:
                raise ImproperlyConfigured(f"Unknown setting {name!r}")
            values[name] = value
        values = {name: _normalise(name, value) for name, value in values.items()}
        return cls(id=id, extra=extra, **values)


def _normalise(name: str, value: Any) -> Any:
    if name == "broker":
        if isinstance(value, (list, tuple)):
            return ";".join(str(v) for v in value)
        return str(value)
    if name == "store" and not isinstance(value, str):
        return str(value)
    return value


def _parse_env(name: str, raw: str, hint: Any) -> Any:
    text = getattr(hint, "__name__", str(hint))
    try:
        if hint is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"Environment variable {ENV_PREFIX}{name.upper()}={raw!r} is not a valid {text}"
        ) from exc
    return raw
