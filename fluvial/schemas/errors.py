"""Errors of the schema registry codecs."""

from __future__ import annotations

from fluvial.exceptions import (
    DecoderUnavailable,
    FluvialError,
    ImproperlyConfigured,
    SerializationError,
)

__all__ = [
    "SchemaDerivationError",
    "SchemaIncompatible",
    "SchemaNotRegistered",
    "SchemaRegistryError",
    "SchemaRegistryUnavailable",
    "WireFormatError",
]


class SchemaRegistryError(FluvialError):
    """The schema registry refused a request (the message says which subject and why)."""


class SchemaIncompatible(SchemaRegistryError):
    """The registry refused to register a schema under a subject: it is incompatible
    with the versions registered before (under the subject's compatibility level)."""


class SchemaNotRegistered(SchemaRegistryError):
    """``schema_registry_auto_register`` is off and the schema is not registered
    under its subject: register it first (or turn auto-registration on)."""


class SchemaRegistryUnavailable(SchemaRegistryError, DecoderUnavailable):
    """The registry could not be reached, even after the client's retries."""


class SchemaDerivationError(ImproperlyConfigured):
    """A type has no Avro or JSON Schema equivalent (the message names the field)."""


class WireFormatError(SerializationError):
    """A payload is not in the Confluent wire format, names an unknown schema id, or
    does not match its schema (a decode error: the topic's decode_error_policy applies)."""
