"""Codecs: turn Python objects into bytes and back (Faust's ``faust.serializers.codecs``).

A codec is registered under a name (``json``, ``raw``, ``binary``, ``pickle``,
``yaml``) and codecs compose left to right with ``|``: ``json() | binary()``
(or ``get_codec("json|binary")``) JSON-encodes, then base64-encodes; decoding
runs the chain in reverse.

>>> get_codec("json|binary").dumps({"a": 1})
b'eyJhIjoxfQ=='
>>> get_codec("json|binary").loads(b'eyJhIjoxfQ==')
{'a': 1}
"""

from __future__ import annotations

import base64
import dataclasses
import io
import pickle as _pickle
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Union

import msgspec

from fluvial.exceptions import ImproperlyConfigured, ImproperlyConfiguredCodec, SerializationError

__all__ = [
    "Codec",
    "CodecArg",
    "binary",
    "dumps",
    "get_codec",
    "json",
    "loads",
    "pickle",
    "raw",
    "register",
    "to_plain",
    "yaml",
]


class Codec:
    """Base class for codecs: subclasses implement ``_dumps`` and ``_loads``.

    ``children`` are the next codecs in a chain: ``a | b`` dumps with ``a``
    then ``b``, and loads with ``b`` then ``a``.
    """

    children: tuple[Codec, ...]
    nodes: tuple[Codec, ...]
    kwargs: dict[str, Any]

    def __init__(self, children: tuple[Codec, ...] | None = None, **kwargs: Any) -> None:
        self.children = children or ()
        self.nodes = (self, *self.children)
        self.kwargs = kwargs

    def _dumps(self, obj: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement _dumps")

    def _loads(self, data: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement _loads")

    def dumps(self, obj: Any) -> bytes:
        """Encode ``obj`` through every codec of the chain."""
        for node in self.nodes:
            obj = node._dumps(obj)
        if not isinstance(obj, bytes):
            raise SerializationError(
                f"codec {self!r} produced {type(obj).__name__}, not bytes: "
                "end the chain with a codec that outputs bytes (e.g. '|binary')"
            )
        return obj

    def loads(self, data: bytes) -> Any:
        """Decode ``data`` through every codec of the chain, last one first."""
        value: Any = data
        for node in reversed(self.nodes):
            value = node._loads(value)
        return value

    def clone(self, *children: Codec) -> Codec:
        """Return a copy of this codec with ``children`` appended to its chain."""
        return type(self)(children=self.children + children, **self.kwargs)

    def __or__(self, other: Any) -> Codec:
        if isinstance(other, Codec):
            return self.clone(other)
        return NotImplemented

    def __repr__(self) -> str:
        return " | ".join(
            f"{type(n).__name__}({', '.join(map(repr, n.kwargs.values()))})" for n in self.nodes
        )


CodecArg = Union[Codec, str, None]


def _want_bytes(obj: Any) -> bytes:
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, str):
        return obj.encode()
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, (int, float, Decimal)) and not isinstance(obj, bool):
        # Keys are often numbers; Faust's raw codec would pass them through
        # unencoded and fail later in the producer.
        return str(obj).encode()
    raise TypeError(f"raw codec needs bytes or str, got {type(obj).__name__}")


def to_plain(obj: Any) -> Any:
    """Convert models, dataclasses, Structs, pydantic models, sets... to JSON-like data.

    Datetimes, Decimals and UUIDs are kept as objects; the JSON codec encodes
    them itself (isoformat / string / string).
    """
    rep = getattr(obj, "to_representation", None)
    if rep is not None and getattr(obj, "__is_model__", False):
        return to_plain(rep())
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, msgspec.Struct):
        return to_plain(msgspec.structs.asdict(obj))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_plain({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    dump = getattr(obj, "model_dump", None)
    if dump is not None:  # pydantic v2
        return dump(mode="json")
    return obj


def _json_default(obj: Any) -> Any:
    """orjson hook for the types it does not encode itself (Faust's JSON rules)."""
    if getattr(obj, "__is_model__", False):
        return obj._representation_shallow()
    json_hook = getattr(obj, "__json__", None)
    if json_hook is not None:
        return json_hook()
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, msgspec.Struct):
        return msgspec.to_builtins(obj)
    dump = getattr(obj, "model_dump", None)
    if dump is not None:  # pydantic v2
        return dump(mode="json")
    tolist = getattr(obj, "tolist", None)
    if tolist is not None:  # numpy arrays and scalars
        return tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# msgspec rather than orjson for encoding: orjson is faster per call, but
# costs ~8x more when the results are kept alive (as a producer batch does).
_json_encode: Callable[[Any], bytes] = msgspec.json.Encoder(
    enc_hook=_json_default, decimal_format="string"
).encode
_json_loads: Callable[[Any], Any] = msgspec.json.Decoder().decode


def json_dumps(obj: Any) -> bytes:
    """Encode ``obj`` as compact JSON (the ``json`` codec's encoder)."""
    return _json_encode(obj)


def json_loads(data: Any) -> Any:
    """Decode JSON bytes or str (the ``json`` codec's decoder)."""
    return _json_loads(data)


class json(Codec):
    """JSON codec (msgspec).

    Records encode as their representation (with the ``__faust`` key),
    dataclasses and Structs as objects, datetimes in ISO 8601 / RFC 3339
    (UTC written ``Z``), Decimal and UUID as strings, sets as lists, bytes
    as base64.
    """

    def _dumps(self, obj: Any) -> bytes:
        return json_dumps(obj)

    def _loads(self, data: Any) -> Any:
        return _json_loads(data)


class raw(Codec):
    """Bytes in, bytes out; ``str`` (and numbers) are UTF-8 encoded on dumps."""

    def _dumps(self, obj: Any) -> bytes:
        return _want_bytes(obj)

    def _loads(self, data: Any) -> Any:
        return _want_bytes(data)


class binary(Codec):
    """Base64 encoding of bytes."""

    def _dumps(self, obj: Any) -> bytes:
        return base64.b64encode(_want_bytes(obj))

    def _loads(self, data: Any) -> Any:
        return base64.b64decode(data)


class yaml(Codec):
    """YAML codec (PyYAML ``safe_load``/``safe_dump``; install ``fluvial[yaml]``)."""

    def _yaml(self) -> Any:
        try:
            import yaml as _yaml
        except ImportError as exc:
            raise ImproperlyConfigured(
                "the 'yaml' codec needs PyYAML: pip install 'fluvial[yaml]'"
            ) from exc
        return _yaml

    def _dumps(self, obj: Any) -> bytes:
        dumped: str = self._yaml().safe_dump(to_plain(obj))
        return dumped.encode()

    def _loads(self, data: Any) -> Any:
        return self._yaml().safe_load(_want_bytes(data).decode())


# What a pickle payload may name: plain data types and registered models.
_SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", name)
        for name in (
            "dict",
            "list",
            "set",
            "frozenset",
            "tuple",
            "str",
            "bytes",
            "bytearray",
            "int",
            "float",
            "complex",
            "bool",
            "range",
            "slice",
            "object",
        )
    }
    | {("datetime", n) for n in ("datetime", "date", "time", "timedelta", "timezone")}
    | {
        ("decimal", "Decimal"),
        ("uuid", "UUID"),
        ("collections", "OrderedDict"),
        ("collections", "deque"),
        ("collections", "defaultdict"),
        ("copyreg", "_reconstructor"),
    }
)


def _sized(make: type[bytes] | type[bytearray]) -> Callable[..., Any]:
    """``bytes``/``bytearray`` for an unpickler: never from a size (``bytearray(1 << 62)``).

    Pickle writes them from their contents, never from a length: a payload
    that asks for a length asks for memory.
    """

    def build(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            raise _pickle.UnpicklingError(
                f"pickle payload asks for {make.__name__}({args[0]}): only "
                f"{make.__name__} from contents may be unpickled")
        return make(*args)

    return build


_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}

_SIZED = {("builtins", "bytes"): _sized(bytes), ("builtins", "bytearray"): _sized(bytearray)}


class _RestrictedUnpickler(_pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # Protocols 0-2 write Python 2's module names.
        module = _PY2_MODULES.get(module, module)
        sized = _SIZED.get((module, name))
        if sized is not None:
            return sized
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        from fluvial.models.registry import model_by_path

        model = model_by_path(module, name)
        if model is not None:
            return model
        raise _pickle.UnpicklingError(
            f"pickle payload refers to {module}.{name}, which is not allowed: only plain "
            "data types and registered Record classes may be unpickled"
        )


class raw_pickle(Codec):
    """Pickle without base64; unpickling is restricted to data types and models."""

    def _dumps(self, obj: Any) -> bytes:
        return _pickle.dumps(obj)

    def _loads(self, data: Any) -> Any:
        return _RestrictedUnpickler(io.BytesIO(_want_bytes(data))).load()


def pickle() -> Codec:
    """Pickle then base64 (Faust's ``pickle`` codec), with restricted unpickling."""
    return raw_pickle() | binary()


#: Codec registry, name -> codec instance.
codecs: dict[str, Codec] = {
    "json": json(),
    "pickle": pickle(),
    "binary": binary(),
    "raw": raw(),
    "yaml": yaml(),
}

#: The built-in JSON codec instance, so fast paths can recognise it by identity.
JSON_CODEC = codecs["json"]
RAW_CODEC = codecs["raw"]


def register(name: str, codec: Codec) -> None:
    """Register ``codec`` under ``name`` (replacing any codec of that name)."""
    if not isinstance(codec, Codec):
        raise ImproperlyConfiguredCodec(f"register({name!r}, ...) needs a Codec, got {codec!r}")
    codecs[name] = codec


def _lookup(name: str) -> Codec:
    try:
        return codecs[name.strip()]
    except KeyError:
        known = ", ".join(sorted(codecs))
        raise ImproperlyConfiguredCodec(
            f"unknown codec {name!r}; known codecs: {known} (add one with fluvial.codecs.register)"
        ) from None


def get_codec(name_or_codec: CodecArg) -> Codec:
    """Return the codec named ``name_or_codec`` (``"a|b"`` composes), or the codec itself."""
    if type(name_or_codec) is str:
        # Fast path: a plain registered name (called per message by some paths).
        found = codecs.get(name_or_codec)
        if found is not None:
            return found
    elif isinstance(name_or_codec, Codec):
        return name_or_codec
    if not isinstance(name_or_codec, str) or not name_or_codec.strip():
        raise ImproperlyConfiguredCodec(f"expected a codec or codec name, got {name_or_codec!r}")
    first, *rest = name_or_codec.split("|")
    codec = _lookup(first)
    for node in rest:
        codec = codec | _lookup(node)
    return codec


def dumps(codec: CodecArg, obj: Any) -> Any:
    """Encode ``obj`` with ``codec``; with no codec, return ``obj`` unchanged (as Faust)."""
    return get_codec(codec).dumps(obj) if codec else obj


def loads(codec: CodecArg, data: Any) -> Any:
    """Decode ``data`` with ``codec``; with no codec, return ``data`` unchanged (as Faust)."""
    return get_codec(codec).loads(data) if codec else data
