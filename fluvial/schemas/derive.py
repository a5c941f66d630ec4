"""Avro schemas and JSON Schemas derived from Record classes (and plain types).

Field types map as follows (Avro / JSON Schema):

=================  ==============================  ===============================
Python             Avro                            JSON Schema
=================  ==============================  ===============================
str                string                          string
int                long                            integer
float              double                          number
bool               boolean                         boolean
bytes              bytes                           string (base64)
datetime           long timestamp-micros           string date-time
date               int date                        string date
Decimal            bytes decimal(precision,scale)  string (fluvial's JSON writes
                   (DecimalField(max_digits,       Decimals as strings)
                   max_decimal_places), else
                   38 digits, 9 places)
UUID               string uuid                     string uuid
Record             record (named by its class)     object
list/set/tuple[X]  array                           array
dict[str, X]       map                             object (additionalProperties)
Optional[X]        union with null                 anyOf with null
=================  ==============================  ===============================

A field with a default is optional (Avro ``default``, absent from JSON
Schema's ``required``), so adding one is a backward-compatible change.
"""

from __future__ import annotations

import json
import types
import typing
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fluvial.models.convert import is_model_class

from .errors import SchemaDerivationError

__all__ = ["avro_name", "avro_schema", "json_schema", "record_to_data"]

#: Precision and scale of an Avro decimal when the field declares none.
DEFAULT_DECIMAL_PRECISION = 38
DEFAULT_DECIMAL_SCALE = 9

_AVRO_PRIMITIVES: dict[Any, Any] = {
    str: "string",
    int: "long",
    float: "double",
    bool: "boolean",
    bytes: "bytes",
    datetime: {"type": "long", "logicalType": "timestamp-micros"},
    date: {"type": "int", "logicalType": "date"},
    uuid.UUID: {"type": "string", "logicalType": "uuid"},
}

_JSON_PRIMITIVES: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    bytes: {"type": "string", "contentEncoding": "base64"},
    datetime: {"type": "string", "format": "date-time"},
    date: {"type": "string", "format": "date"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    Decimal: {"type": "string"},
}


def _optional_of(typ: Any) -> Any | None:
    """``X`` for ``Optional[X]`` / ``X | None``, else ``None``."""
    origin = typing.get_origin(typ)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(typ)) == 2:
            return args[0]
    return None


def _fields(model: Any) -> list[tuple[str, Any, Any, bool, Any]]:
    """(output name, type, default, has default, descriptor) of each field written."""
    model._resolve_types()
    options = model._options
    out = []
    for name, typ in options.fields.items():
        descriptor = options.descriptors[name]
        if descriptor.exclude:
            continue
        has_default = name in options.defaults
        out.append((descriptor.output_name, typ, options.defaults.get(name), has_default,
                    descriptor))
    return out


def avro_name(model: Any) -> str:
    """The full Avro name of a Record class: its ``namespace`` option (Faust's
    ``module.ClassName`` by default; function scopes left out)."""
    name = model._options.namespace or f"{model.__module__}.{model.__qualname__}"
    return ".".join(part for part in name.split(".") if part != "<locals>")


def _json_default(value: Any) -> tuple[bool, Any]:
    """(True, value) if ``value`` can be written as a schema default."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True, value
    if isinstance(value, (list, dict)) and not value:
        return True, value
    return False, None


def avro_schema(typ: Any) -> Any:
    """The Avro schema (JSON-like data) of a Record class or a plain type."""
    schema = _AvroBuilder().schema(typ, "value")
    # ``{"type": "string"}``, not ``"string"``: the form confluent-kafka registers.
    return {"type": schema} if isinstance(schema, str) else schema


class _AvroBuilder:
    def __init__(self) -> None:
        self.named: set[str] = set()

    def schema(self, typ: Any, where: str, descriptor: Any = None) -> Any:
        inner = _optional_of(typ)
        if inner is not None:
            return ["null", self.schema(inner, where, descriptor)]
        if is_model_class(typ):
            return self.record(typ)
        if typ is Decimal:
            precision = getattr(descriptor, "max_digits", None) or DEFAULT_DECIMAL_PRECISION
            scale = getattr(descriptor, "max_decimal_places", None)
            return {"type": "bytes", "logicalType": "decimal", "precision": precision,
                    "scale": DEFAULT_DECIMAL_SCALE if scale is None else scale}
        if typ in _AVRO_PRIMITIVES:
            return _AVRO_PRIMITIVES[typ]
        origin = typing.get_origin(typ)
        args = typing.get_args(typ)
        if origin in (list, set, frozenset, tuple, typing.List, typing.Set) and args:  # noqa: UP006
            variadic = len(args) == 2 and args[1] is Ellipsis
            if origin is tuple and not variadic and len(set(args)) != 1:
                raise SchemaDerivationError(
                    f"{where}: a tuple of mixed types ({typ}) has no Avro schema; "
                    "use a nested Record"
                )
            return {"type": "array", "items": self.schema(args[0], f"{where}[]")}
        if origin in (dict, Mapping, typing.Dict) and len(args) == 2:  # noqa: UP006
            if args[0] is not str:
                raise SchemaDerivationError(
                    f"{where}: Avro maps have string keys, not {args[0]} ({typ})"
                )
            return {"type": "map", "values": self.schema(args[1], f"{where}{{}}")}
        raise SchemaDerivationError(
            f"{where}: no Avro schema for type {typ!r}; use str, int, float, bool, bytes, "
            "datetime, date, Decimal, UUID, a Record, list[X], dict[str, X] or Optional[X]"
        )

    def record(self, model: Any) -> Any:
        full = avro_name(model)
        if full in self.named:
            return full  # a named type is defined once, then referred to by name
        self.named.add(full)
        namespace, _, name = full.rpartition(".")
        fields = []
        for out_name, typ, default, has_default, descriptor in _fields(model):
            schema = self.schema(typ, f"{model.__name__}.{out_name}", descriptor)
            field: dict[str, Any] = {"name": out_name, "type": schema}
            if has_default:
                ok, value = _json_default(default)
                if ok:
                    if isinstance(schema, list) and value is not None:
                        # A union's default must match its first branch.
                        field["type"] = [*schema[1:], schema[0]]
                    field["default"] = value
            fields.append(field)
        record: dict[str, Any] = {"type": "record", "name": name, "fields": fields}
        if namespace:
            record["namespace"] = namespace
        return record


def json_schema(typ: Any) -> dict[str, Any]:
    """The JSON Schema (draft-07) of a Record class or a plain type."""
    schema = _json(typ, "value", None)
    return {"$schema": "http://json-schema.org/draft-07/schema#", **schema}


def _json(typ: Any, where: str, descriptor: Any) -> dict[str, Any]:
    inner = _optional_of(typ)
    if inner is not None:
        return {"anyOf": [{"type": "null"}, _json(inner, where, descriptor)]}
    if is_model_class(typ):
        properties: dict[str, Any] = {}
        required = []
        for out_name, ftyp, default, has_default, fdesc in _fields(typ):
            prop = _json(ftyp, f"{typ.__name__}.{out_name}", fdesc)
            if has_default:
                ok, value = _json_default(default)
                if ok:
                    prop = {**prop, "default": value}
            else:
                required.append(out_name)
            properties[out_name] = prop
        return {"type": "object", "title": typ.__name__, "properties": properties,
                "required": required}
    if typ in _JSON_PRIMITIVES:
        return dict(_JSON_PRIMITIVES[typ])
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (list, set, frozenset, tuple) and args:
        return {"type": "array", "items": _json(args[0], f"{where}[]", None)}
    if origin in (dict, Mapping) and len(args) == 2:
        return {"type": "object", "additionalProperties": _json(args[1], f"{where}{{}}", None)}
    raise SchemaDerivationError(
        f"{where}: no JSON Schema for type {typ!r}; use str, int, float, bool, bytes, "
        "datetime, date, Decimal, UUID, a Record, list[X], dict[str, X] or Optional[X]"
    )


def record_to_data(value: Any) -> Any:
    """A Record (nested ones too) as plain dicts, without fluvial's ``__faust`` metadata;
    datetimes, Decimals and UUIDs stay objects. Sets and tuples become lists."""
    if getattr(value, "__is_model__", False):
        return {k: record_to_data(v) for k, v in value.asdict().items()}
    if isinstance(value, Mapping):
        return {k: record_to_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [record_to_data(v) for v in value]
    return value


def dumps_schema(schema: Any) -> str:
    """A schema as the compact JSON text the registry stores."""
    return json.dumps(schema, separators=(",", ":"))


def coerce_to_avro(schema: Any, value: Any) -> Any:
    """JSON-like input (``fluvial send``'s) made fit for an Avro schema: ISO 8601 text for
    timestamps and dates, numbers or text for decimals, ``[key, ...]`` nesting as is."""
    named: dict[str, Any] = {}
    return _coerce(schema, value, named, "")


def _coerce(schema: Any, value: Any, named: dict[str, Any], namespace: str) -> Any:
    if isinstance(schema, str):
        found = named.get(schema) or named.get(f"{namespace}.{schema}")
        return _coerce(found, value, named, namespace) if found is not None else value
    if isinstance(schema, list):  # a union: the first branch the value fits
        if value is None:
            return None
        for branch in schema:
            if branch != "null" and not (isinstance(branch, dict) and branch.get("type") == "null"):
                return _coerce(branch, value, named, namespace)
        return value
    if not isinstance(schema, dict):
        return value
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if kind == "record":
        namespace = schema.get("namespace", namespace)
        full = f"{namespace}.{schema['name']}" if namespace else schema["name"]
        named[full] = named[schema["name"]] = schema
        if not isinstance(value, Mapping):
            return value
        out = dict(value)
        for field in schema["fields"]:
            if field["name"] in out:
                out[field["name"]] = _coerce(field["type"], out[field["name"]], named, namespace)
        return out
    if kind == "array" and isinstance(value, list):
        return [_coerce(schema["items"], v, named, namespace) for v in value]
    if kind == "map" and isinstance(value, Mapping):
        return {k: _coerce(schema["values"], v, named, namespace) for k, v in value.items()}
    if isinstance(value, str):
        if logical in ("timestamp-millis", "timestamp-micros"):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        if logical == "date":
            return date.fromisoformat(value)
    if logical == "decimal" and isinstance(value, (str, int, float)):
        return Decimal(str(value))
    return value
