"""The schema registry client of an app, built from its settings."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fluvial.exceptions import ImproperlyConfigured

from .errors import (
    SchemaIncompatible,
    SchemaNotRegistered,
    SchemaRegistryError,
    SchemaRegistryUnavailable,
)

if TYPE_CHECKING:
    from fluvial.app import App

__all__ = ["SUBJECT_STRATEGIES", "registry_client", "subject_strategy", "translate_error"]

#: ``schema_registry_subject_strategy`` values and what they name a subject.
SUBJECT_STRATEGIES = {
    "topic": "{topic}-key / {topic}-value (Confluent's TopicNameStrategy)",
    "record": "the record's full name (RecordNameStrategy)",
    "topic_record": "{topic}-{record full name} (TopicRecordNameStrategy)",
}

_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _import_client() -> Any:
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImproperlyConfigured(
            "schema registry codecs need confluent-kafka's schema registry extras: "
            "pip install 'fluvial[schemas]'"
        ) from exc
    return SchemaRegistryClient


def registry_client(app: App) -> Any:
    """The app's ``SchemaRegistryClient`` (one per app), from ``schema_registry_*`` settings."""
    client = _clients.get(app)
    if client is not None:
        return client
    conf = app.conf
    url = conf.schema_registry_url
    if not url:
        raise ImproperlyConfigured(
            "a topic uses a schema registry codec (avro, protobuf, json_schema) but "
            "schema_registry_url is not set: App(..., schema_registry_url='http://host:8081') "
            "or FLUVIAL_SCHEMA_REGISTRY_URL"
        )
    client_conf: dict[str, Any] = {"url": url}
    if conf.schema_registry_basic_auth:
        if ":" not in conf.schema_registry_basic_auth:
            raise ImproperlyConfigured(
                "schema_registry_basic_auth must be 'USER:PASSWORD'"
            )
        client_conf["basic.auth.user.info"] = conf.schema_registry_basic_auth
    client = _import_client()(client_conf)
    _clients[app] = client
    return client


def subject_strategy(app: App) -> Callable[..., Any]:
    """confluent-kafka's subject name function for ``schema_registry_subject_strategy``."""
    from confluent_kafka.schema_registry import (
        record_subject_name_strategy,
        topic_record_subject_name_strategy,
        topic_subject_name_strategy,
    )

    name = app.conf.schema_registry_subject_strategy
    strategies: dict[str, Callable[..., Any]] = {
        "topic": topic_subject_name_strategy,
        "record": record_subject_name_strategy,
        "topic_record": topic_record_subject_name_strategy,
    }
    try:
        return strategies[name]
    except KeyError:
        raise ImproperlyConfigured(
            f"schema_registry_subject_strategy={name!r} is not one of "
            + ", ".join(f"{k!r} ({v})" for k, v in SUBJECT_STRATEGIES.items())
        ) from None


def translate_error(
    exc: BaseException, subject: str | None, url: str
) -> SchemaRegistryError | None:
    """fluvial's error for a registry client failure, or ``None`` if it is none."""
    from confluent_kafka.schema_registry.common._httpx_compat import httpx
    from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientError

    where = f"subject {subject!r}" if subject else "the registry"
    if isinstance(exc, ClientError):
        verdict = exc.error_message
        status = exc.http_status_code
        if status == 409:
            return SchemaIncompatible(
                f"the schema registry refused the schema for {where}: {verdict} "
                f"(HTTP 409). Make the change compatible (e.g. give a new field a default) "
                "or change the subject's compatibility level"
            )
        if status == 404 and subject:
            return SchemaNotRegistered(
                f"the schema is not registered under {where} and "
                f"schema_registry_auto_register is off: register it first ({verdict}, HTTP 404)"
            )
        return SchemaRegistryError(f"the schema registry at {url} failed for {where}: {exc}")
    if isinstance(exc, httpx.TransportError):
        return SchemaRegistryUnavailable(
            f"cannot reach the schema registry at {url} (after the client's retries): "
            f"{type(exc).__name__}: {exc}. Check schema_registry_url and that the registry runs"
        )
    return None
