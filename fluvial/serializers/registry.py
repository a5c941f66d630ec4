"""Faust's ``faust.serializers.Registry``: serialize keys and values by type."""

from __future__ import annotations

from typing import Any

from fluvial.codecs import CodecArg
from fluvial.serializers import Schema

__all__ = ["Registry"]


class Registry:
    """Keys and values to bytes and back, given a type (a model, ``int``, ``str``...).

    ``key_serializer`` and ``value_serializer`` are the defaults (Faust's:
    raw keys, JSON values); a ``serializer=`` argument, then a model's own
    ``serializer`` option, take precedence. Decoding errors raise
    :class:`~fluvial.exceptions.KeyDecodeError` /
    :class:`~fluvial.exceptions.ValueDecodeError`.
    """

    def __init__(self, key_serializer: CodecArg = None,
                 value_serializer: CodecArg = "json") -> None:
        self.key_serializer = key_serializer
        self.value_serializer = value_serializer
        self._schemas: dict[tuple[str, Any], Schema] = {}

    def _schema(self, kind: str, typ: Any) -> Schema:
        schema = self._schemas.get((kind, typ))
        if schema is None:
            schema = (Schema(key_type=typ) if kind == "key" else Schema(value_type=typ))
            self._schemas[(kind, typ)] = schema
        return schema

    def loads_key(self, typ: Any, key: bytes | None, *, serializer: CodecArg = None) -> Any:
        """Decode a message key as ``typ`` (``None``: as it comes, or a blessed model)."""
        return self._schema("key", typ).loads_key(
            key, default_serializer=self.key_serializer or "raw", serializer=serializer)

    def loads_value(self, typ: Any, value: bytes | None, *,
                    serializer: CodecArg = None) -> Any:
        """Decode a message value as ``typ``."""
        return self._schema("value", typ).loads_value(
            value, default_serializer=self.value_serializer or "json", serializer=serializer)

    def dumps_key(self, typ: Any, key: Any, *, serializer: CodecArg = None) -> bytes | None:
        """Encode a message key (``bytes`` pass through)."""
        return self._schema("key", typ).dumps_key(
            key, default_serializer=self.key_serializer or "raw", serializer=serializer)

    def dumps_value(self, typ: Any, value: Any, *, serializer: CodecArg = None) -> bytes | None:
        """Encode a message value."""
        return self._schema("value", typ).dumps_value(
            value, default_serializer=self.value_serializer or "json", serializer=serializer)
