"""librdkafka configuration shared by the producer, consumer and admin client."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError

from ...auth import reject_url_credentials
from ...exceptions import ImproperlyConfigured

__all__ = ["DEFAULT_PORT", "bootstrap_servers", "client_config", "describe_error"]

DEFAULT_PORT = 9092

#: librdkafka's own log lines (connection refused, metadata retries, ...) go to
#: Python logging under this name instead of stderr.
RDKAFKA_LOGGER = logging.getLogger("fluvial.transport.kafka.librdkafka")

_PORT_RE = re.compile(r":\d+$")

#: Connection errors librdkafka retries by itself; its log line (facility
#: ``FAIL``) already tells of each, so the error callbacks do not repeat them.
CONNECTION_CODES = frozenset({
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._RESOLVE,
})


#: A broker that stays unreachable is reported once per this many seconds (per
#: client and broker); the failures in between are logged at DEBUG.
CONNECTION_REPORT_INTERVAL_S = 10.0


class Throttle:
    """One report per key per interval, and how many were held back since the last."""

    def __init__(self, interval: float = CONNECTION_REPORT_INTERVAL_S) -> None:
        self.interval = interval
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()  # librdkafka calls back from its own threads

    def due(self, key: str) -> int | None:
        """None: hold this one back; else report it, with the count held back since."""
        now = time.monotonic()
        with self._lock:
            last, held = self._last.get(key, (-self.interval, 0))
            if now - last < self.interval:
                self._last[key] = (last, held + 1)
                return None
            self._last[key] = (now, 0)
            return held


def _demote(record: logging.LogRecord) -> None:
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"


class _ConnectionFailures(logging.Filter):
    """librdkafka logs every refused connection (``FAIL``) at its ERR level, many a
    second while a broker is down, though it retries: one WARNING per client and
    broker per interval says so, the rest go to DEBUG."""

    def __init__(self) -> None:
        super().__init__()
        self.throttle = Throttle()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 3 and args[0] == "FAIL"):
            return True
        _, client, text = args
        # "[thrd:host:port/id]: host:port/id: Connect to ... failed: ..."
        text = str(text)
        if text.startswith("[thrd:"):
            text = text.partition("]: ")[2]
        broker, _, what = text.partition(": ")
        held = self.throttle.due(f"{client}|{broker}")
        if held is None:
            _demote(record)
        else:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "Cannot reach Kafka broker %s (%s): %s — retrying%s"
            record.args = (broker, client, what, _held_back(held))
        return True


def _held_back(count: int) -> str:
    return (f"; {count} more such failures in the last {CONNECTION_REPORT_INTERVAL_S:.0f} s"
            if count else "")


RDKAFKA_LOGGER.addFilter(_ConnectionFailures())

_errors = Throttle()


def bootstrap_servers(url: str) -> str:
    """Turn ``kafka://h1:9092;kafka://h2,h3`` into librdkafka's ``h1:9092,h2:9092,h3:9092``."""
    reject_url_credentials(url)
    servers: list[str] = []
    for part in re.split(r"[;,]", url):
        server = part.strip()
        scheme, sep, rest = server.partition("://")
        if sep:
            if scheme != "kafka":
                raise ImproperlyConfigured(
                    f"Broker URL {url!r} mixes schemes: {part!r} is not kafka://host:port"
                )
            server = rest
        server = server.strip().rstrip("/")
        if not server:
            continue
        if _PORT_RE.search(server) is None:
            server = f"{server}:{DEFAULT_PORT}"
        servers.append(server)
    if not servers:
        raise ImproperlyConfigured(
            f"Broker URL {url!r} names no server: use kafka://host:port[;kafka://host:port...]"
        )
    return ",".join(servers)


def log_client_error(err: KafkaError, client: str, logger: logging.Logger = RDKAFKA_LOGGER
                     ) -> None:
    """An error librdkafka reports and retries, at WARNING. A refused connection or a
    name that does not resolve is already told by librdkafka's own log line (once
    per interval, see :class:`_ConnectionFailures`): DEBUG here. All brokers down is
    a WARNING once per interval per client."""
    code = err.code()
    if code in (KafkaError._TRANSPORT, KafkaError._RESOLVE):
        logger.debug("Kafka %s: %s: %s", client, err.name(), err.str())
        return
    held = _errors.due(f"{client}|{code}") if code in CONNECTION_CODES else 0
    if held is None:
        logger.debug("Kafka %s: %s: %s", client, err.name(), err.str())
    else:
        logger.warning("Kafka %s: %s: %s%s", client, err.name(), err.str(),
                       f" — retrying{_held_back(held)}" if code in CONNECTION_CODES else "")


def _log_error(err: KafkaError) -> None:
    # Fatal errors are also recorded by the producer/consumer that owns the handle.
    log_client_error(err, "client")


def client_config(
    servers: str, base: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The librdkafka config for one client: defaults < transport config < per-client config."""
    config: dict[str, Any] = {
        "bootstrap.servers": servers,
        "logger": RDKAFKA_LOGGER,
        "error_cb": _log_error,
    }
    config.update(base)
    config.update(overrides)
    return config


def describe_error(exc: BaseException) -> str:
    """A one-line description of a librdkafka error for user-facing messages."""
    if exc.args and isinstance(exc.args[0], KafkaError):
        err: KafkaError = exc.args[0]
        return f"{err.name()}: {err.str()}"
    return str(exc) or type(exc).__name__
