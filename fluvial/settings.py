"""App settings: one typed object, ``app.conf``.

Names follow Faust (``broker``, ``broker_commit_interval`` …) so Faust apps
keep their ``App(...)`` calls. A value comes from, in this order of
precedence (highest first):

1. a command-line option (``--broker``);
2. an assignment ``app.conf.NAME = value`` (until the app starts);
3. a ``FLUVIAL_<NAME>`` environment variable;
4. Faust's environment variable for it (``BROKER_URL``, ``WEB_PORT``,
   ``APP_DATADIR`` …, prefixed by ``env_prefix`` when that is set);
5. the ``App(...)`` argument;
6. Faust's ``FAUST_``/``F_`` defaults (``F_DATADIR``, ``F_WEB_PORT``);
7. the default.

Every value, whatever its source, is checked against the setting's type; a
bad one raises :class:`~fluvial.exceptions.ImproperlyConfigured` naming the
setting, the value, where it came from and what was expected. Secrets
(``broker_credentials``, ``ssl_context``) are masked in ``repr`` and errors.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import ssl
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import timedelta, tzinfo
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo

from .auth import redact, reject_url_credentials
from .exceptions import ImproperlyConfigured

__all__ = ["ENV_PREFIX", "FAUST_ENV", "IGNORED", "Settings"]

logger = logging.getLogger(__name__)

ENV_PREFIX = "FLUVIAL_"

GUARANTEES = ("at_least_once", "exactly_once")
DECODE_ERROR_POLICIES = ("stop", "skip", "dead_letter")
PROCESSING_ERROR_POLICIES = ("skip", "retry", "dead_letter", "stop")
SUPERVISOR_STRATEGIES = ("restart", "stop")
OFFSET_RESETS = ("earliest", "latest")
LOG_FORMATS = ("text", "json")
COMPRESSION_TYPES = ("none", "gzip", "snappy", "lz4", "zstd")

#: Faust's environment variable for each setting fluvial honours (read with
#: ``env_prefix`` in front when one is set, as Faust does).
FAUST_ENV: Mapping[str, str] = {
    "datadir": "APP_DATADIR",
    "tabledir": "APP_TABLEDIR",
    "id_format": "APP_ID_FORMAT",
    "timezone": "TIMEZONE",
    "version": "APP_VERSION",
    "agent_supervisor": "AGENT_SUPERVISOR",
    "broker": "BROKER_URL",
    "broker_check_crcs": "BROKER_CHECK_CRCS",
    "broker_client_id": "BROKER_CLIENT_ID",
    "broker_commit_every": "BROKER_COMMIT_EVERY",
    "broker_commit_interval": "BROKER_COMMIT_INTERVAL",
    "broker_heartbeat_interval": "BROKER_HEARTBEAT_INTERVAL",
    "broker_max_poll_interval": "BROKER_MAX_POLL_INTERVAL",
    "broker_max_poll_records": "BROKER_MAX_POLL_RECORDS",
    "broker_request_timeout": "BROKER_REQUEST_TIMEOUT",
    "broker_session_timeout": "BROKER_SESSION_TIMEOUT",
    "broker_metadata_max_age": "BROKER_METADATA_MAX_AGE",
    "broker_connections_max_idle": "BROKER_CONNECTIONS_MAX_IDLE",
    "consumer_max_fetch_size": "CONSUMER_MAX_FETCH_SIZE",
    "consumer_auto_offset_reset": "CONSUMER_AUTO_OFFSET_RESET",
    "consumer_group_instance_id": "CONSUMER_GROUP_INSTANCE_ID",
    "key_serializer": "APP_KEY_SERIALIZER",
    "value_serializer": "APP_VALUE_SERIALIZER",
    "producer_acks": "PRODUCER_ACKS",
    "producer_compression_type": "PRODUCER_COMPRESSION_TYPE",
    "producer_linger": "PRODUCER_LINGER",
    "producer_linger_ms": "PRODUCER_LINGER_MS",
    "producer_max_batch_size": "PRODUCER_MAX_BATCH_SIZE",
    "producer_max_request_size": "PRODUCER_MAX_REQUEST_SIZE",
    "producer_request_timeout": "PRODUCER_REQUEST_TIMEOUT",
    "reply_expires": "APP_REPLY_EXPIRES",
    "reply_to_prefix": "APP_REPLY_TO_PREFIX",
    "processing_guarantee": "PROCESSING_GUARANTEE",
    "stream_buffer_maxsize": "STREAM_BUFFER_MAXSIZE",
    "stream_processing_timeout": "STREAM_PROCESSING_TIMEOUT",
    "store": "APP_STORE",
    "table_standby_replicas": "TABLE_STANDBY_REPLICAS",
    "topic_allow_declare": "TOPIC_ALLOW_DECLARE",
    "topic_partitions": "TOPIC_PARTITIONS",
    "topic_replication_factor": "TOPIC_REPLICATION_FACTOR",
    "canonical_url": "NODE_CANONICAL_URL",
    "web_bind": "WEB_BIND",
    "web_enabled": "APP_WEB_ENABLED",
    "web_host": "WEB_HOST",
    "web_port": "WEB_PORT",
}

#: Faust's defaults read from ``FAUST_<NAME>`` / ``F_<NAME>`` (faust/types/_env.py).
FAUST_DEFAULT_ENV: Mapping[str, str] = {"datadir": "DATADIR", "web_port": "WEB_PORT"}

#: Faust settings fluvial accepts but does not use, and why (the README's table).
IGNORED: Mapping[str, str] = {
    "debug": "Faust's debug mode exposes aiomonitor and sensor pages; fluvial has neither",
    "blocking_timeout": "Faust's blocking detector (a SIGALRM timer); not implemented",
    "broker_api_version": "librdkafka negotiates the protocol version with the broker",
    "consumer_api_version": "librdkafka negotiates the protocol version with the broker",
    "producer_api_version": "librdkafka negotiates the protocol version with the broker",
    "broker_commit_livelock_soft_timeout": "no commit-livelock warning in fluvial",
    "broker_rebalance_timeout": "librdkafka sends max.poll.interval.ms (broker_max_poll_interval) "
                                "as the rebalance timeout; it has no setting of its own",
    "producer_partitioner": "fluvial partitions keys as Kafka's Java client does (murmur2); "
                            "a custom aiokafka partitioner has no librdkafka equivalent",
    "producer_threaded": "librdkafka sends from its own threads already",
    "recovery_consistency_check": "changelog recovery always checks offsets against the broker",
    "store_check_exists": "an aerospike-store option; fluvial has no aerospike store",
    "crash_app_on_aerospike_exception": "an aerospike-store option",
    "aerospike_retries_on_exception": "an aerospike-store option",
    "aerospike_sleep_seconds_between_retries_on_exception": "an aerospike-store option",
    "reply_create_topic": "the reply topic is always created when an agent is asked",
    "stream_publish_on_commit": "not implemented (exactly-once gives atomic publish)",
    "stream_recovery_delay": "not implemented; workers start recovery at once",
    "stream_wait_empty": "a stopping worker always finishes the event each actor holds",
    "table_cleanup_interval": "windowed tables expire old windows as the stream passes them",
    "table_key_index_size": "no key-index cache; keys are looked up in the store",
    "topic_disable_leader": "no leader-election topic in this build",
    "cache": "Faust's cache backends (redis) are not provided",
    "web": "fluvial's web server is Starlette on uvicorn; there is no driver to choose",
    "web_transport": "TCP only (no unix:// sockets)",
    "web_ssl_context": "no TLS on the worker's web server; terminate TLS in a proxy",
    "worker_redirect_stdouts": "the worker leaves stdout/stderr alone",
    "worker_redirect_stdouts_level": "the worker leaves stdout/stderr alone",
    "stream_ack_cancelled_tasks": "deprecated in Faust, without effect there either",
    "stream_ack_exceptions": "deprecated in Faust, without effect there either",
    "ConsumerScheduler": "the fetch loop dispatches librdkafka's batches as they come",
    "Event": "class override not supported (events are made on the hot path)",
    "Schema": "class override not supported; pass schema= to topics",
    "Stream": "class override not supported (agents make their streams)",
    "TableManager": "class override not supported",
    "Serializers": "class override not supported; register codecs instead",
    "Worker": "class override not supported; the CLI runs the worker",
    "PartitionAssignor": "librdkafka's range assignor keeps co-partitioning",
    "LeaderAssignor": "class override not supported",
    "Router": "class override not supported",
    "HttpClient": "no aiohttp client is provided",
    "Monitor": "class override not supported; metrics are served at /metrics",
}

#: Faust's ``agent_supervisor`` classes (mode's supervisors) and fluvial's strategy for each.
MODE_SUPERVISORS: Mapping[str, str] = {
    "OneForOneSupervisor": "restart",
    "OneForAllSupervisor": "restart",
    "CrashingSupervisor": "stop",
}


@dataclass(eq=False)
class Settings:
    """Everything an app is configured with (``app.conf``).

    Assigning an attribute (``app.conf.store = 'memory://'``) checks the value
    as an ``App()`` argument would be; once the app has started, it raises.
    """

    id: str
    #: The id as given to ``App()``; ``id`` adds ``-v{version}`` from version 2 (``id_format``).
    name: str = ""
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
    #: Seconds a network request may take (librdkafka ``socket.timeout.ms``); None: 60 s.
    broker_request_timeout: float | None = None
    #: Seconds before metadata is refreshed (``metadata.max.age.ms``); None: librdkafka's 900 s.
    broker_metadata_max_age: float | None = None
    #: Seconds before an idle connection is closed (``connections.max.idle.ms``).
    broker_connections_max_idle: float | None = None
    #: Check the CRC32 of consumed records (``check.crcs``); None: librdkafka's (off).
    broker_check_crcs: bool | None = None
    #: SASLCredentials / SSLCredentials / ... (fluvial.auth) or a mapping of librdkafka settings.
    broker_credentials: Any = None
    #: Faust's ``ssl_context``: TLS to the broker when ``broker_credentials`` is not given.
    ssl_context: ssl.SSLContext | None = None
    stream_buffer_maxsize: int = 4096
    #: Seconds a partition's oldest event may stay unprocessed before an error is logged.
    stream_processing_timeout: float = 300.0
    consumer_auto_offset_reset: str = "earliest"
    consumer_group_instance_id: str | None = None
    #: Bytes fetched per partition at most (``max.partition.fetch.bytes``); None: 16 MB.
    consumer_max_fetch_size: int | None = None
    #: Bytes of fetched message payloads a consumer queues ahead of processing, all
    #: partitions together (``queued.max.messages.kbytes``); None: 128 MB.
    consumer_prefetch_size: int | None = None
    #: Messages per partition a consumer fetches ahead of processing at most
    #: (``queued.min.messages``); None: 200,000.
    consumer_prefetch_records: int | None = None
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
    #: Changes a live-feed websocket client may have waiting to be sent; past it (with
    #: changes of an earlier checkpoint still waiting) it is disconnected as too slow.
    web_live_queue_size: int = 10_000
    #: The URL other workers reach this one at (``app.router``); default
    #: ``http://{web_host}:{web_port}``. Must differ between the workers of an app.
    canonical_url: str = ""
    timezone: str = "UTC"
    version: int = 1
    #: How ``id`` is made from the given id from version 2 on (Faust's ``id_format``).
    id_format: str = "{id}-v{self.version}"
    datadir: str = "{conf.name}-data"
    tabledir: str = "tables"
    agent_supervisor: str = "restart"
    decode_error_policy: str = "stop"
    #: What becomes of an event an agent raised on (per agent: ``on_error=``):
    #: ``skip``, ``retry``, ``dead_letter`` or ``stop``.
    processing_error_policy: str = "skip"
    #: Failed retries of one event (``retry``) before the worker stops on it.
    processing_error_retries: int = 3
    dead_letter_topic: str = "{conf.id}-dead-letter"
    reply_to: str = ""
    reply_to_prefix: str = "f-reply-"
    reply_expires: float = 86_400.0
    producer_linger_ms: int = 5
    #: Seconds a batch may wait to fill (Faust's newer name); wins over producer_linger_ms.
    producer_linger: float | None = None
    #: -1 (all in-sync replicas, also written 'all'), 0 or 1.
    producer_acks: int = -1
    #: gzip, snappy, lz4, zstd or none (``compression.type``); None: none.
    producer_compression_type: str | None = None
    #: Largest message the producer sends, in bytes (``message.max.bytes``); None: 1 MB.
    producer_max_request_size: int | None = None
    #: Largest batch per partition, in bytes (``batch.size``); None: librdkafka's 1 MB.
    producer_max_batch_size: int | None = None
    #: Seconds a message may wait for delivery, retries included (``message.timeout.ms``).
    producer_request_timeout: float | None = None
    #: Bytes of messages the producer queues before ``send`` waits for room
    #: (``queue.buffering.max.kbytes``); None: 1 GB.
    producer_buffer_memory: int | None = None
    #: Import these packages' modules at start so their agents register: True (the
    #: ``origin`` package), a list of package names, or a function returning one.
    autodiscover: Any = False
    #: The package the app lives in (``autodiscover=True`` scans it).
    origin: str | None = None
    #: ``logging.config.dictConfig`` mapping the worker applies after its own set-up.
    logging_config: Mapping[str, Any] | None = None
    #: Extra ``logging.Handler`` objects the worker adds to the root logger.
    loghandlers: Sequence[logging.Handler] = ()
    #: Prefix of Faust's environment variable names (``MYAPP_`` reads ``MYAPP_BROKER_URL``).
    env_prefix: str | None = None
    #: Faust's class overrides: a subclass of fluvial's class, or 'module:Class'.
    Agent: Any = None
    Topic: Any = None
    Table: Any = None
    SetTable: Any = None
    GlobalTable: Any = None
    SetGlobalTable: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The names some source set (not left at their default).
    given: frozenset[str] = frozenset()
    # -- schema registry (avro, protobuf and json_schema codecs) --
    #: URL of a Confluent-compatible schema registry (``http://host:8081``).
    schema_registry_url: str = ""
    #: Basic-auth credentials for the registry, ``USER:PASSWORD`` ("" for none).
    schema_registry_basic_auth: str = ""
    #: Register a topic's schema on first use; off: it must be registered already.
    schema_registry_auto_register: bool = True
    #: How subjects are named: ``topic`` ({topic}-value), ``record`` or ``topic_record``.
    schema_registry_subject_strategy: str = "topic"
    # -- observability ---------------------------------------------------------------
    #: Serve Prometheus metrics at ``/metrics`` on the worker's web server.
    web_metrics_enabled: bool = True
    #: Log lines as ``text``, or as one JSON object per line (``json``).
    log_format: str = "text"

    def __post_init__(self) -> None:
        self._check("processing_guarantee", GUARANTEES)
        self._check("decode_error_policy", DECODE_ERROR_POLICIES)
        self._check("processing_error_policy", PROCESSING_ERROR_POLICIES)
        if self.processing_error_retries < 0:
            raise ImproperlyConfigured(
                f"processing_error_retries must be >= 0, got {self.processing_error_retries}")
        self._check("agent_supervisor", SUPERVISOR_STRATEGIES)
        self._check("consumer_auto_offset_reset", OFFSET_RESETS)
        self._check("log_format", LOG_FORMATS)
        if self.producer_compression_type is not None:
            self._check("producer_compression_type", COMPRESSION_TYPES)
        if self.producer_acks not in (-1, 0, 1):
            raise ImproperlyConfigured(
                f"producer_acks={self.producer_acks!r} is not one of -1 ('all'), 0, 1")
        if self.exactly_once and self.producer_acks != -1:
            raise ImproperlyConfigured(
                f"producer_acks={self.producer_acks} with processing_guarantee='exactly_once': "
                "transactions need acks from all in-sync replicas; leave producer_acks at -1")
        if not self.id:
            raise ImproperlyConfigured("App id must be a non-empty string")
        if not self.name:
            object.__setattr__(self, "name", self.id)
        for name in ("topic_partitions", "topic_replication_factor", "stream_buffer_maxsize",
                     "version", "broker_commit_every", "broker_max_poll_records",
                     "consumer_max_fetch_size", "consumer_prefetch_size",
                     "consumer_prefetch_records", "producer_buffer_memory",
                     "producer_max_request_size",
                     "producer_max_batch_size", "web_live_queue_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ImproperlyConfigured(f"{name} must be >= 1, got {value}")
        for name in ("broker_commit_interval", "broker_request_timeout",
                     "broker_metadata_max_age", "broker_connections_max_idle",
                     "producer_request_timeout", "reply_expires", "web_forward_timeout",
                     "stream_processing_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ImproperlyConfigured(f"{name} must be > 0 seconds, got {value}")
        if self.producer_linger is not None and self.producer_linger < 0:
            raise ImproperlyConfigured(
                f"producer_linger must be >= 0 s, got {self.producer_linger}")
        if not 0 < self.broker_heartbeat_interval < self.broker_session_timeout:
            raise ImproperlyConfigured(
                "broker_heartbeat_interval must be > 0 and below broker_session_timeout "
                f"(got {self.broker_heartbeat_interval:g} s and {self.broker_session_timeout:g} s)"
            )
        if not 0 < self.web_port < 65536:
            raise ImproperlyConfigured(f"web_port must be a port number, got {self.web_port}")
        if not self.canonical_url:
            object.__setattr__(self, "canonical_url", self._default_canonical_url())
        try:
            ZoneInfo(self.timezone)
        except (KeyError, ValueError) as exc:
            raise ImproperlyConfigured(f"Unknown timezone {self.timezone!r}") from exc
        reject_url_credentials(self.broker)
        object.__setattr__(self, "_sealed", True)

    def _check(self, name: str, allowed: tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value not in allowed:
            raise ImproperlyConfigured(
                f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}"
            )

    # -- assignment (``app.conf.x = y``) -------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if not self.__dict__.get("_sealed"):
            object.__setattr__(self, name, value)  # __init__
            return
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        assign: Callable[[str, Any], None] | None = self.__dict__.get("_assign")
        if assign is not None:
            assign(name, value)  # the app checks it is not running, then re-resolves
            return
        self.update(self.assigned(name, value))

    def assigned(self, name: str, value: Any) -> Settings:
        """These settings with ``name`` set to ``value`` (checked as an assignment)."""
        if name in IGNORED:
            _warn_ignored(self.name, [name])
            return self.replace(extra={**self.extra, name: value})
        known = _known()
        if name not in known:
            raise ImproperlyConfigured(
                f"app.conf.{name}: fluvial has no setting {name!r} (see the README's settings)")
        coerced = _coerce(name, value, "app.conf assignment")
        return self.replace(**{name: coerced, "given": self.given | {name}})

    def update(self, other: Settings) -> None:
        """Take every value of ``other`` (re-resolved settings), keeping this object."""
        for f in fields(self):
            object.__setattr__(self, f.name, getattr(other, f.name))

    def bind(self, assign: Callable[[str, Any], None]) -> None:
        """Route attribute assignments through ``assign`` (the app's)."""
        object.__setattr__(self, "_assign", assign)

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={redact(getattr(self, f.name))!r}"
                          if f.name in ("broker_credentials", "ssl_context", "extra")
                          else f"{f.name}={getattr(self, f.name)!r}"
                          for f in fields(self) if f.name != "given")
        return f"Settings({shown})"

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
        tabledir = Path(self.tabledir.format(conf=self))
        return tabledir if tabledir.is_absolute() else self.appdir / tabledir

    @property
    def dead_letter_topic_name(self) -> str:
        return self.dead_letter_topic.format(conf=self)

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"

    @property
    def linger_ms(self) -> int:
        """``linger.ms``: ``producer_linger`` (seconds) if given, else ``producer_linger_ms``."""
        if self.producer_linger is not None:
            return round(self.producer_linger * 1000)
        return self.producer_linger_ms

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
        assigned: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Merge the sources (see the module's docstring for their order)."""
        known = _known()
        env = os.environ if environ is None else environ
        arguments = _faust_aliases(dict(arguments))
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        extra: dict[str, Any] = {}
        unknown: list[str] = []
        ignored: list[str] = []

        def put(name: str, value: Any, source: str) -> None:
            values[name], sources[name] = value, source

        for name, env_name in FAUST_DEFAULT_ENV.items():
            for faust_prefix in ("FAUST_", "F_"):
                raw = env.get(faust_prefix + env_name)
                if raw is not None:
                    put(name, raw, f"environment variable {faust_prefix}{env_name}")
                    break
        for name, value in arguments.items():
            if name in known:
                put(name, value, "App() argument")
            elif name in IGNORED:
                ignored.append(name)
                extra[name] = value
            else:
                unknown.append(name)
                extra[name] = value
        if ignored:
            _warn_ignored(id, ignored)
        if unknown:
            logger.warning("Ignoring settings fluvial does not know: %s",
                           ", ".join(sorted(unknown)))
        prefix: Any = arguments.get("env_prefix")
        for env_name in ("APP_ENV_PREFIX", ENV_PREFIX + "ENV_PREFIX"):
            if env.get(env_name) is not None:
                prefix = env[env_name]
                put("env_prefix", prefix, f"environment variable {env_name}")
        if prefix is not None and not isinstance(prefix, str):
            raise ImproperlyConfigured(f"Setting env_prefix: got {prefix!r}, expected a string")
        for name, env_name in FAUST_ENV.items():
            full = f"{prefix.rstrip('_')}_{env_name}" if prefix else env_name
            raw = env.get(full)
            if raw is not None:
                put(name, raw, f"environment variable {full}")
        for name in known:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                put(name, raw, f"environment variable {ENV_PREFIX}{name.upper()}")
        for name, value in (assigned or {}).items():
            if name in IGNORED:
                extra[name] = value
            else:
                put(name, value, "app.conf assignment")
        for name, value in (overrides or {}).items():
            if value is None:
                continue
            if name not in known:
                raise ImproperlyConfigured(f"Unknown setting {name!r}")
            put(name, value, "command line")
        checked = {name: _coerce(name, value, sources[name]) for name, value in values.items()}
        given = frozenset(checked)
        version = checked.get("version", 1)
        final_id = id
        if version > 1:
            id_format = checked.get("id_format", cls.id_format)
            try:
                final_id = id_format.format(id=id, self=_VersionView(version))
            except (KeyError, AttributeError, IndexError, ValueError) as exc:
                raise ImproperlyConfigured(
                    f"id_format {id_format!r} cannot be filled in: use {{id}} and "
                    f"{{self.version}} ({exc})") from exc
        return cls(id=final_id, name=id, extra=extra, given=given, **checked)


class _VersionView:
    """What ``id_format`` may refer to as ``self`` (Faust formats it with the settings)."""

    def __init__(self, version: int) -> None:
        self.version = version


_KNOWN: frozenset[str] | None = None
_HINTS: dict[str, Any] = {}


def _known() -> frozenset[str]:
    global _KNOWN
    if _KNOWN is None:
        _KNOWN = frozenset(f.name for f in fields(Settings)) - {"id", "name", "extra", "given"}
        _HINTS.update(get_type_hints(Settings))
    return _KNOWN


_WARNED: set[tuple[str, str]] = set()


def _warn_ignored(app_id: str, names: Sequence[str]) -> None:
    for name in sorted(names):
        if (app_id, name) in _WARNED:
            continue
        _WARNED.add((app_id, name))
        logger.warning("Setting %s is accepted for Faust compatibility but has no effect: %s",
                       name, IGNORED[name])


def _faust_aliases(arguments: dict[str, Any]) -> dict[str, Any]:
    """Faust's deprecated ``url`` (= broker) and ``broker_consumer``/``broker_producer``."""
    if "url" in arguments:
        url = arguments.pop("url")
        arguments.setdefault("broker", url)
    broker = arguments.get("broker")
    for name in ("broker_consumer", "broker_producer"):
        if name in arguments:
            value = arguments.pop(name)
            if value is not None and broker is not None and \
                    _normalise_broker(value) != _normalise_broker(broker):
                raise ImproperlyConfigured(
                    f"{name}={_normalise_broker(value)!r} differs from broker="
                    f"{_normalise_broker(broker)!r}: fluvial consumes and produces through one "
                    f"cluster. Give one broker= and drop {name}.")
    return arguments


# -- type checking ------------------------------------------------------------------------

_TRUE = ("1", "true", "yes", "on", "y", "t")
_FALSE = ("0", "false", "no", "off", "n", "f", "")


def _normalise_broker(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)


def _url_text(value: Any) -> Any:
    """Faust passes URLs as ``yarl.URL`` too; anything else is checked as a string."""
    return str(value) if hasattr(value, "scheme") and hasattr(value, "host") else value


def _normalise_timezone(value: Any) -> Any:
    if isinstance(value, ZoneInfo):
        return value.key
    if isinstance(value, tzinfo):
        if value.utcoffset(None) == timedelta(0):
            return "UTC"
        raise ImproperlyConfigured(
            f"timezone={value!r}: give an IANA name ('Europe/Paris') or a ZoneInfo")
    return value


def _normalise_acks(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "all":
        return -1
    return value


def _normalise_supervisor(value: Any) -> Any:
    """Faust names mode's supervisor classes; fluvial has two strategies."""
    if isinstance(value, str) and value in SUPERVISOR_STRATEGIES:
        return value
    name = value.__name__ if isinstance(value, type) else str(value)
    name = name.replace(":", ".").rsplit(".", 1)[-1]
    if name in MODE_SUPERVISORS:
        return MODE_SUPERVISORS[name]
    raise ImproperlyConfigured(
        f"agent_supervisor={value!r}: use 'restart' or 'stop' (or Faust's "
        f"{', '.join(MODE_SUPERVISORS)}); the Forfeit supervisors are not supported")


def _normalise_guarantee(value: Any) -> Any:
    return getattr(value, "value", value)  # Faust's ProcessingGuarantee enum


_NORMALISE: Mapping[str, Callable[[Any], Any]] = {
    "broker": _normalise_broker,
    "store": lambda v: _url_text(v),
    "canonical_url": lambda v: _url_text(v),
    "datadir": lambda v: str(v) if isinstance(v, Path) else v,
    "tabledir": lambda v: str(v) if isinstance(v, Path) else v,
    "timezone": _normalise_timezone,
    "producer_acks": _normalise_acks,
    "agent_supervisor": _normalise_supervisor,
    "processing_guarantee": _normalise_guarantee,
    "consumer_auto_offset_reset": lambda v: v.lower() if isinstance(v, str) else v,
    "producer_compression_type": lambda v: v.lower() if isinstance(v, str) else v,
    "loghandlers": lambda v: () if v is None else v,
}


def _coerce(name: str, value: Any, source: str) -> Any:
    """``value`` as the type of setting ``name``, or ImproperlyConfigured saying why not."""
    _known()
    normalise = _NORMALISE.get(name)
    if normalise is not None:
        value = normalise(value)
    hint = _HINTS[name]
    try:
        return _as_type(hint, value)
    except (TypeError, ValueError, OverflowError) as exc:
        shown = redact(value) if name in ("broker_credentials", "ssl_context") else value
        raise ImproperlyConfigured(
            f"Setting {name}: {source} gave {shown!r}, expected {_type_name(hint)}"
        ) from exc


def _as_type(hint: Any, value: Any) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        args = get_args(hint)
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.strip().lower() in ("none", "null") \
                and type(None) in args:
            return None
        (base,) = [a for a in args if a is not type(None)]
        return _as_type(base, value)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
        raise ValueError(value)
    if hint is int:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value.strip().replace("_", ""))
        raise TypeError(value)
    if hint is float:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, timedelta):
            return value.total_seconds()
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            number = float(value.strip())
        else:
            raise TypeError(value)
        if math.isnan(number) or math.isinf(number):
            raise ValueError(value)
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError(value)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        if isinstance(value, Mapping):
            return value
        raise TypeError(value)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Sequence):
        (item,) = get_args(hint)
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise TypeError(value)
        if not all(isinstance(v, item) for v in value):
            raise TypeError(value)
        return tuple(value)
    if isinstance(hint, type):
        if isinstance(value, hint):
            return value
        raise TypeError(value)
    if origin is frozenset:  # pragma: no cover - not a user setting
        return value
    return value


def _type_name(hint: Any) -> str:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        names = [_type_name(a) for a in get_args(hint) if a is not type(None)]
        return " or ".join(names) + " or None"
    if hint is bool:
        return "a bool (true/false, yes/no, on/off, 1/0)"
    if hint is int:
        return "an int"
    if hint is float:
        return "a number of seconds (float)"
    if hint is str:
        return "a string"
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return "a mapping"
    if origin is not None and isinstance(origin, type) and issubclass(origin, Sequence):
        return f"a list of {get_args(hint)[0].__name__}"
    return getattr(hint, "__name__", str(hint))
