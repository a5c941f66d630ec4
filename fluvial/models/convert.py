"""Compile a field's type annotation into a function that converts decoded data.

``compile_converter(List[Order], opts)`` returns a callable turning a list of
dicts into a list of ``Order``; it returns None when values need no work
(``str``, ``List[int]``...), so the decode path skips those fields entirely.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol, Union

import msgspec

__all__ = [
    "ConvertOptions",
    "Converter",
    "compile_converter",
    "is_foreign_model",
    "is_model_class",
    "parse_datetime",
]

Converter = Callable[[Any], Any]

_NoneType = type(None)
_UNION_TYPES: tuple[Any, ...] = (Union, types.UnionType)
_LIST_ORIGINS = (list, cabc.Sequence, cabc.MutableSequence, cabc.Iterable, cabc.Collection)
_SET_ORIGINS = (set, cabc.Set, cabc.MutableSet)
_DICT_ORIGINS = (dict, cabc.Mapping, cabc.MutableMapping)


class ConvertOptions(Protocol):
    """The model options that change how values convert."""

    isodates: bool
    decimals: bool
    coerce: bool
    date_parser: Callable[[Any], datetime] | None
    coercions: dict[Any, Callable[[Any], Any]]


def parse_datetime(value: Any) -> Any:
    """Parse an ISO 8601 string (``Z`` accepted); other values pass through."""
    if isinstance(value, str):
        if value.endswith(("Z", "z")):
            value = value[:-1] + "+00:00"
        return datetime.fromisoformat(value)
    return value


def _parse_date(value: Any) -> Any:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _to_decimal(value: Any) -> Any:
    if value is None or isinstance(value, Decimal):
        return value
    # str() first: Decimal(9.99) would keep the float's binary noise.
    return Decimal(str(value)) if isinstance(value, float) else Decimal(value)


def is_model_class(tp: Any) -> bool:
    """True for Record subclasses (abstract ones included)."""
    return isinstance(tp, type) and getattr(tp, "__is_model__", False) is True


def is_foreign_model(tp: Any) -> bool:
    """True for dataclasses, msgspec Structs and pydantic v2 models."""
    if not isinstance(tp, type):
        return False
    return (
        dataclasses.is_dataclass(tp)
        or issubclass(tp, msgspec.Struct)
        or hasattr(tp, "model_validate")
    )


def _foreign_converter(tp: type) -> Converter:
    validate = getattr(tp, "model_validate", None)
    if validate is not None:
        return lambda v: v if isinstance(v, tp) else validate(v)
    return lambda v: v if isinstance(v, tp) else msgspec.convert(v, tp, strict=False)


def _primitive_coercer(tp: type) -> Converter:
    return lambda v: v if v is None or type(v) is tp else tp(v)


def compile_converter(tp: Any, opts: ConvertOptions) -> Converter | None:
    """Return a converter for values annotated ``tp``, or None if they need none."""
    if tp is Any or tp is object or isinstance(tp, (str, typing.ForwardRef, typing.TypeVar)):
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return compile_converter(args[0], opts)
    if origin in _UNION_TYPES:
        return _union_converter(args, opts)
    if origin is typing.Literal or origin is typing.ClassVar:
        return None
    if is_model_class(tp):
        from_field: Converter = tp._from_data_field
        return from_field
    if origin is not None:
        return _generic_converter(origin, args, opts)
    return _leaf_converter(tp, opts)


def _leaf_converter(tp: Any, opts: ConvertOptions) -> Converter | None:
    if not isinstance(tp, type):
        return None
    custom = opts.coercions.get(tp)
    if custom is not None:  # the ``coercions={Type: callable}`` class option
        return lambda v: v if v is None or isinstance(v, tp) else custom(v)
    if issubclass(tp, datetime):
        if opts.date_parser is not None and (opts.isodates or opts.coerce):
            parser = opts.date_parser
            return lambda v: parser(v) if isinstance(v, str) else v
        return parse_datetime if (opts.isodates or opts.coerce) else None
    if issubclass(tp, date):
        return _parse_date if (opts.isodates or opts.coerce) else None
    if issubclass(tp, Decimal):
        return _to_decimal if (opts.decimals or opts.coerce) else None
    if is_foreign_model(tp):
        return _foreign_converter(tp)
    if tp in (set, frozenset, tuple):
        return lambda v: v if v is None or isinstance(v, tp) else tp(v)
    if opts.coerce and (tp in (int, float, str, bool) or issubclass(tp, enum.Enum)):
        return _primitive_coercer(tp)
    return None


def _generic_converter(
    origin: Any, args: tuple[Any, ...], opts: ConvertOptions
) -> Converter | None:
    if origin in _DICT_ORIGINS:
        value_conv = compile_converter(args[1], opts) if len(args) == 2 else None
        if value_conv is None:
            return None
        vc = value_conv
        return lambda v: v if v is None else {k: vc(x) for k, x in v.items()}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = compile_converter(args[0], opts)
            if item is None:
                return lambda v: v if v is None or type(v) is tuple else tuple(v)
            ic = item
            return lambda v: v if v is None else tuple(ic(x) for x in v)
        convs = [compile_converter(a, opts) or _identity for a in args]
        return lambda v: v if v is None else tuple(c(x) for c, x in zip(convs, v, strict=False))
    if origin in _SET_ORIGINS or origin is frozenset or origin is cabc.Set:
        make: type = frozenset if origin is frozenset else set
        item = compile_converter(args[0], opts) if args else None
        if item is None:
            return lambda v: v if v is None or type(v) is make else make(v)
        sc = item
        return lambda v: v if v is None else make(sc(x) for x in v)
    if origin in _LIST_ORIGINS:
        item = compile_converter(args[0], opts) if args else None
        if item is None:
            return None
        lc = item
        return lambda v: v if v is None else [lc(x) for x in v]
    return None


def _identity(value: Any) -> Any:
    return value


def _union_converter(args: tuple[Any, ...], opts: ConvertOptions) -> Converter | None:
    members = [a for a in args if a is not _NoneType]
    if len(members) == 1:
        inner = compile_converter(members[0], opts)
        if inner is None:
            return None
        single = inner
        return lambda v: None if v is None else single(v)
    models = [m for m in members if is_model_class(m)]
    if not models:
        # Union of plain types: the JSON value already has one of them.
        return None
    model_tuple = tuple(models)

    def convert(value: Any) -> Any:
        if value is None or isinstance(value, model_tuple) or not isinstance(value, dict):
            return value
        from fluvial.models.registry import namespace_of, registry

        ns = namespace_of(value)
        named = registry.get(ns) if ns else None
        if named is not None and issubclass(named, model_tuple):
            return named.from_data(value)
        for model in model_tuple:
            if model._options.required_fieldset <= value.keys():
                return model.from_data(value, preferred_type=model)
        return value

    return convert
