"""Avro, Protobuf and JSON Schema in the Confluent wire format, with a schema registry.

Codecs (also registered by name: ``avro``, ``json_schema``, ``protobuf``) on
confluent-kafka's ``SchemaRegistryClient`` and serializers; Avro schemas and
JSON Schemas derived from Record classes. Install with ``pip install
'fluvial[schemas]'``.
"""

from .codec import BoundSchemaCodec, SchemaCodec, avro, json_schema, protobuf
from .derive import avro_schema as avro_schema_of
from .derive import json_schema as json_schema_of
from .errors import (
    SchemaDerivationError,
    SchemaIncompatible,
    SchemaNotRegistered,
    SchemaRegistryError,
    SchemaRegistryUnavailable,
    WireFormatError,
)
from .startup import prepare_schemas

__all__ = [
    "BoundSchemaCodec",
    "SchemaCodec",
    "SchemaDerivationError",
    "SchemaIncompatible",
    "SchemaNotRegistered",
    "SchemaRegistryError",
    "SchemaRegistryUnavailable",
    "WireFormatError",
    "avro",
    "avro_schema_of",
    "json_schema",
    "json_schema_of",
    "prepare_schemas",
    "protobuf",
]
