"""``Schema``: how a topic's keys and values become bytes and back (as in Faust).

The serializer for a key or value is, in order: the Schema's own
(``key_serializer``/``value_serializer``, i.e. the topic's), else the
model's ``serializer`` class option, else the app default (Faust's
``key_serializer='raw'``, ``value_serializer='json'``). When *encoding* a
model instance, its own ``serializer`` option comes first, as in Faust.

The runtime asks once per topic for a specialised callable
(``value_decoder("json")``) and calls it per message, with no dispatch on
the way.

Faust's paths: ``faust.serializers.codecs`` is :mod:`fluvial.codecs`, and
:class:`~fluvial.serializers.registry.Registry` serializes keys and values
by type as Faust's does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from fluvial.codecs import JSON_CODEC, RAW_CODEC, Codec, CodecArg, get_codec, json_dumps
from fluvial.exceptions import (
    DecoderUnavailable,
    FluvialError,
    KeyDecodeError,
    SerializationError,
    ValueDecodeError,
)
from fluvial.models.convert import is_foreign_model, is_model_class
from fluvial.models.registry import maybe_model
from fluvial.schemas.codec import SchemaCodec

__all__ = ["Decoder", "Encoder", "Registry", "Schema", "codecs"]

Decoder = Callable[[bytes | None], Any]
Encoder = Callable[[Any], bytes | None]


def _want_str(value: Any) -> Any:
    return bytes(value).decode() if isinstance(value, (bytes, bytearray, memoryview)) else value


def _want_bytes(value: Any) -> Any:
    return value.encode() if isinstance(value, str) else value


def _bind(codec: Codec, channel: Any, field: str, typ: Any) -> Codec:
    """A schema registry codec bound to ``channel``'s app and topic; other codecs as they are."""
    if channel is not None and isinstance(codec, SchemaCodec):
        return codec.bind(channel.app, channel.topics[0], field, typ)
    return codec


def _model_serializer(typ: Any) -> CodecArg:
    options = getattr(typ, "_options", None)
    return getattr(options, "serializer", None) if is_model_class(typ) else None


def _needs_payload(typ: Any) -> bool:
    """True if an absent (None) message body cannot decode to ``typ``."""
    return is_model_class(typ) or is_foreign_model(typ)


def _payload_converter(typ: Any, codec: Codec) -> Callable[[Any], Any]:
    """Return ``bytes -> value of typ`` for one codec (the per-message work)."""
    is_json = codec is JSON_CODEC
    is_raw = codec is RAW_CODEC
    loads = codec.loads
    if getattr(codec, "typed", False):
        return loads  # the codec yields values of ``typ`` (schema registry codecs)
    if typ is None:
        if is_raw:
            return bytes
        return lambda data: maybe_model(loads(data))
    if is_model_class(typ):
        if is_json:
            return typ._decoder_for(codec)  # type: ignore[no-any-return]
        from_data = typ.from_data
        return lambda data: from_data(loads(data))
    if typ is str:
        if is_raw:
            return lambda data: data.decode()
        return lambda data: _want_str(loads(data))
    if typ is bytes:
        return bytes if is_raw else lambda data: _want_bytes(loads(data))
    if typ in (int, float):
        if is_raw:
            return typ  # type: ignore[no-any-return]  # int(b"42") == 42
        return lambda data: typ(_want_str(loads(data)))
    if typ is Decimal:
        return lambda data: Decimal(_want_str(loads(data)))
    validate_json = getattr(typ, "model_validate_json", None)
    validate = getattr(typ, "model_validate", None)
    if validate_json is not None and validate is not None:  # pydantic v2 model
        if is_json:
            return validate_json  # type: ignore[no-any-return]
        return lambda data: validate(loads(data))
    # dataclasses, msgspec Structs and typing expressions (list[int], ...).
    if is_json:
        return msgspec.json.Decoder(typ).decode
    return lambda data: msgspec.convert(loads(data), typ, strict=False)


def _make_decoder(
    typ: Any, codec: Codec, error: type[SerializationError], what: str, allow_empty: bool
) -> Decoder:
    convert = _payload_converter(typ, codec)
    reject_none = _needs_payload(typ) and not allow_empty
    type_name = getattr(typ, "__name__", repr(typ))

    def decode(data: bytes | None) -> Any:
        if data is None:
            if reject_none:
                raise error(f"expected a {what} of type {type_name}, received None (empty body)")
            return None
        try:
            return convert(data)
        except DecoderUnavailable:
            raise  # not the message's fault: no decode error
        except Exception as exc:  # MemoryError too: a payload asking for more than there is
            raise error(
                f"cannot decode {what} as {type_name} with codec {codec!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    return decode


def _make_encoder(
    typ: Any, codec: Codec, what: str, bind: Callable[[Codec], Codec] | None = None
) -> Encoder:
    codec_dumps = codec.dumps
    fast_json = codec is JSON_CODEC
    raw_str = codec is RAW_CODEC

    def encode(value: Any) -> bytes | None:
        if value is None:
            return None
        if type(value) is bytes:
            return value
        if raw_str and type(value) is str:
            return value.encode()
        try:
            if type(value) in _SCALARS:
                return codec_dumps(value)  # neither a model nor a dataclass: as below
            if getattr(value, "__is_model__", False):
                own = value._options.serializer
                if own:
                    if bind is not None:
                        return bind(get_codec(own)).dumps(value)
                    return value.dumps(serializer=own)  # type: ignore[no-any-return]
                if fast_json:
                    return json_dumps(value._representation_shallow())
                return value.dumps(serializer=codec)  # type: ignore[no-any-return]
            if dataclasses.is_dataclass(value) or isinstance(value, msgspec.Struct):
                return codec_dumps(value) if fast_json else codec_dumps(_plain(value))
            return codec_dumps(value)
        except FluvialError:
            raise
        except Exception as exc:
            raise SerializationError(
                f"cannot encode {what} {type(value).__name__} with codec {codec!r}: {exc}"
            ) from exc

    return encode


#: Exact types the encoders hand to the codec as they are (a group_by key, a count).
_SCALARS = frozenset({str, int, float, bool})


def _plain(value: Any) -> Any:
    from fluvial.codecs import to_plain

    return to_plain(value)


class Schema:
    """Key and value types and serializers of a topic (Faust's ``faust.Schema``)."""

    key_type: Any = None
    value_type: Any = None
    key_serializer: CodecArg = None
    value_serializer: CodecArg = None
    allow_empty: bool = False

    def __init__(
        self,
        *,
        key_type: Any = None,
        value_type: Any = None,
        key_serializer: CodecArg = None,
        value_serializer: CodecArg = None,
        allow_empty: bool | None = None,
    ) -> None:
        self._cache: dict[tuple[str, Any, Any], Any] = {}
        self.update(
            key_type=key_type,
            value_type=value_type,
            key_serializer=key_serializer,
            value_serializer=value_serializer,
            allow_empty=allow_empty,
        )

    def update(
        self,
        *,
        key_type: Any = None,
        value_type: Any = None,
        key_serializer: CodecArg = None,
        value_serializer: CodecArg = None,
        allow_empty: bool | None = None,
    ) -> None:
        """Set the given attributes; a model type lends its serializer if none is set."""
        if key_type is not None:
            self.key_type = key_type
        if value_type is not None:
            self.value_type = value_type
        if key_serializer is not None:
            self.key_serializer = key_serializer
        if value_serializer is not None:
            self.value_serializer = value_serializer
        if self.key_serializer is None and self.key_type is not None:
            self.key_serializer = _model_serializer(self.key_type)
        if self.value_serializer is None and self.value_type is not None:
            self.value_serializer = _model_serializer(self.value_type)
        if allow_empty is not None:
            self.allow_empty = allow_empty
        self._cache.clear()

    # -- compiled callables for the runtime ----------------------------------

    def _cached(
        self, kind: str, serializer: CodecArg, default: Any, make: Callable[[], Any]
    ) -> Any:
        key = (kind, serializer, default)
        fn = self._cache.get(key)
        if fn is None:
            fn = self._cache[key] = make()
        return fn

    def key_decoder(
        self, default_serializer: CodecArg = "raw", *, serializer: CodecArg = None,
        channel: Any = None,
    ) -> Decoder:
        """Return ``decode(bytes | None) -> key`` raising :class:`KeyDecodeError`.

        ``channel`` (the topic) binds a schema registry codec to its subject.
        """
        codec = _bind(get_codec(serializer or self.key_serializer or default_serializer),
                      channel, "key", self.key_type)
        return self._cached(  # type: ignore[no-any-return]
            "kd",
            serializer,
            (default_serializer, channel),
            lambda: _make_decoder(self.key_type, codec, KeyDecodeError, "key", False),
        )

    def value_decoder(
        self, default_serializer: CodecArg = "json", *, serializer: CodecArg = None,
        channel: Any = None,
    ) -> Decoder:
        """Return ``decode(bytes | None) -> value`` raising :class:`ValueDecodeError`."""
        codec = _bind(get_codec(serializer or self.value_serializer or default_serializer),
                      channel, "value", self.value_type)
        return self._cached(  # type: ignore[no-any-return]
            "vd",
            serializer,
            (default_serializer, channel),
            lambda: _make_decoder(
                self.value_type, codec, ValueDecodeError, "value", self.allow_empty
            ),
        )

    def fast_converters(
        self, key_default: CodecArg = "raw", value_default: CodecArg = "json", *,
        channel: Any = None,
    ) -> tuple[Decoder | None, Decoder]:
        """The bare ``bytes -> key`` / ``bytes -> value`` converters for batch decoding.

        No error translation, no ``None`` handling: the runtime wraps a whole
        batch in one ``try`` and falls back to :meth:`key_decoder` /
        :meth:`value_decoder` per message when anything fails. The key
        converter is ``None`` when keys pass through as they are (raw bytes).
        """
        key_codec = _bind(get_codec(self.key_serializer or key_default), channel, "key",
                          self.key_type)
        value_codec = _bind(get_codec(self.value_serializer or value_default), channel, "value",
                            self.value_type)
        key = _payload_converter(self.key_type, key_codec)
        value = _payload_converter(self.value_type, value_codec)
        return (None if key is bytes else key), value

    def key_encoder(
        self, default_serializer: CodecArg = "raw", *, serializer: CodecArg = None,
        channel: Any = None,
    ) -> Encoder:
        """Return ``encode(key) -> bytes | None``."""
        codec = _bind(get_codec(serializer or self.key_serializer or default_serializer),
                      channel, "key", self.key_type)
        return self._cached(  # type: ignore[no-any-return]
            "ke",
            serializer,
            (default_serializer, channel),
            lambda: _make_encoder(self.key_type, codec, "key",
                                  lambda c: _bind(c, channel, "key", self.key_type)),
        )

    def value_encoder(
        self, default_serializer: CodecArg = "json", *, serializer: CodecArg = None,
        channel: Any = None,
    ) -> Encoder:
        """Return ``encode(value) -> bytes | None``."""
        codec = _bind(get_codec(serializer or self.value_serializer or default_serializer),
                      channel, "value", self.value_type)
        return self._cached(  # type: ignore[no-any-return]
            "ve",
            serializer,
            (default_serializer, channel),
            lambda: _make_encoder(self.value_type, codec, "value",
                                  lambda c: _bind(c, channel, "value", self.value_type)),
        )

    # -- one-off calls ----------------------------------------------------------

    def loads_key(
        self,
        data: bytes | None,
        *,
        default_serializer: CodecArg = "raw",
        serializer: CodecArg = None,
    ) -> Any:
        return self.key_decoder(default_serializer, serializer=serializer)(data)

    def loads_value(
        self,
        data: bytes | None,
        *,
        default_serializer: CodecArg = "json",
        serializer: CodecArg = None,
    ) -> Any:
        return self.value_decoder(default_serializer, serializer=serializer)(data)

    def dumps_key(
        self, key: Any, *, default_serializer: CodecArg = "raw", serializer: CodecArg = None,
        channel: Any = None,
    ) -> bytes | None:
        return self.key_encoder(default_serializer, serializer=serializer, channel=channel)(key)

    def dumps_value(
        self, value: Any, *, default_serializer: CodecArg = "json", serializer: CodecArg = None,
        channel: Any = None,
    ) -> bytes | None:
        return self.value_encoder(default_serializer, serializer=serializer,
                                  channel=channel)(value)

    def __repr__(self) -> str:
        def show(x: Any) -> str:
            return "*default*" if x is None else getattr(x, "__name__", repr(x))

        return (
            f"<{type(self).__name__}: KT={show(self.key_type)} ({show(self.key_serializer)}) "
            f"VT={show(self.value_type)} ({show(self.value_serializer)})>"
        )


from fluvial.serializers import codecs  # noqa: E402 - Faust's path of fluvial.codecs
from fluvial.serializers.registry import Registry  # noqa: E402 - needs Schema
