"""librdkafka configuration shared by the producer, consumer and admin client."""

from __future__ import annotations

import logging
import re
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


class _TransientAtWarning(logging.Filter):
    """librdkafka logs a refused connection (``FAIL``) at its ERR level, though it
    retries: a broker restarting is a WARNING, not an ERROR, for the worker."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.levelno == logging.ERROR and isinstance(record.args, tuple)
                and record.args and record.args[0] == "FAIL"):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


RDKAFKA_LOGGER.addFilter(_TransientAtWarning())


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


def _log_error(err: KafkaError) -> None:
    # Transient connection errors are retried by librdkafka (and logged by it);
    # fatal ones are recorded by the producer/consumer that owns the handle.
    level = logging.DEBUG if err.code() in CONNECTION_CODES else logging.WARNING
    RDKAFKA_LOGGER.log(level, "librdkafka: %s", err.str())


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
