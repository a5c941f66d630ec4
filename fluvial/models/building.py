"""Class-creation machinery for Records: fields, descriptors and generated code.

Everything here runs once per class. The generated ``__init__`` and JSON
decoder are plain functions compiled with ``exec`` so the per-message work
is a handful of dict operations (see ``bench/records_decode.py``).
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from fluvial.models.fields import FieldDescriptor, field_for_type
from fluvial.models.options import ModelOptions
from fluvial.models.registry import BLESSED_KEY, registry

if TYPE_CHECKING:
    from fluvial.models.record import Record

__all__ = ["build_init", "build_json_decoder", "collect_fields", "resolve_annotation"]

_NoneType = type(None)
_UNION_TYPES: tuple[Any, ...] = (typing.Union, types.UnionType)
_MUTABLE_DEFAULTS = (list, dict, set, bytearray)


class _Unresolved(str):
    """An annotation that could not be evaluated yet (forward reference)."""


def resolve_annotation(owner: type, name: str, annotation: Any) -> Any:
    """Evaluate one annotation of ``owner`` (string or with forward refs)."""
    module = sys.modules.get(owner.__module__)
    globalns = dict(vars(module)) if module is not None else {}
    shim = types.SimpleNamespace(__annotations__={name: annotation})
    try:
        return typing.get_type_hints(shim, globalns=globalns, localns={owner.__name__: owner})[name]
    except (NameError, AttributeError, TypeError, SyntaxError):
        return _Unresolved(annotation if isinstance(annotation, str) else repr(annotation))


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return annotation is typing.ClassVar or typing.get_origin(annotation) is typing.ClassVar


def is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in _UNION_TYPES and _NoneType in typing.get_args(tp)


def remove_optional(tp: Any) -> Any:
    if is_optional(tp):
        members = [a for a in typing.get_args(tp) if a is not _NoneType]
        if len(members) == 1:
            return members[0]
    return tp


def collect_fields(cls: type[Record], stop: type) -> tuple[dict[str, Any], dict[str, type]]:
    """Return ``{field: annotation}`` in definition order and the class defining each."""
    fields: dict[str, Any] = {}
    owners: dict[str, type] = {}
    chain = [c for c in reversed(cls.__mro__) if issubclass(c, stop) and c is not stop]
    for klass in chain:
        for name, annotation in inspect.get_annotations(klass).items():
            if _is_classvar(annotation):
                continue
            fields[name] = annotation
            owners[name] = klass
    return fields, owners


def _find_default(
    cls: type, name: str, stop: type
) -> tuple[bool, Any, FieldDescriptor[Any] | None]:
    """Return (has_default, default, descriptor given as the class attribute)."""
    for klass in cls.__mro__:
        if klass is stop:
            break
        if name in klass.__dict__:
            value = klass.__dict__[name]
            if isinstance(value, FieldDescriptor):
                return (not value.required, value.default, value)
            return True, value, None
    return False, None, None


def check_default_order(cls: type) -> None:
    """Like dataclasses: a field without default cannot follow one with a default."""
    seen_default: list[str] = []
    for name, annotation in inspect.get_annotations(cls).items():
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, _MISSING)
        has_default = value is not _MISSING and not (
            isinstance(value, FieldDescriptor) and value.required
        )
        if has_default:
            seen_default.append(name)
        elif seen_default:
            raise TypeError(
                f"Non-default {cls.__name__} field {name} cannot follow default "
                f"field{'s' if len(seen_default) > 1 else ''} {', '.join(seen_default)}"
            )


_MISSING: Any = object()


def setup_fields(cls: type[Record], options: ModelOptions, stop: type) -> bool:
    """Fill ``options`` with fields, defaults and descriptors; return True if all resolved."""
    raw, owners = collect_fields(cls, stop)
    types_: dict[str, Any] = {
        name: resolve_annotation(owners[name], name, ann) for name, ann in raw.items()
    }
    defaults: dict[str, Any] = {}
    descriptors: dict[str, FieldDescriptor[Any]] = {}
    tags: dict[str, type] = {}
    for name, tp in list(types_.items()):
        tag = _tag_of(tp)
        if tag is not None:
            tags[name] = tag
            types_[name] = tp = typing.get_args(tp)[0]
        has_default, default, given = _find_default(cls, name, stop)
        if not has_default and is_optional(tp):
            has_default, default = True, None
        if has_default:
            defaults[name] = default
        common = {
            "field": name,
            "type": tp,
            "model": cls,
            "required": not has_default,
            "default": default,
            "coerce": options.coerce,
            "date_parser": options.date_parser,
        }
        if given is not None:
            descr = given.clone(**common)
        else:
            descr = field_for_type(remove_optional(tp))(**common)
        descriptors[name] = descr
        setattr(cls, name, descr)
    options.fields = types_
    options.fieldset = frozenset(types_)
    options.fieldpos = dict(enumerate(types_))
    options.defaults = defaults
    options.optionalset = frozenset(defaults)
    options.required_fieldset = frozenset(
        d.input_name for n, d in descriptors.items() if n not in defaults
    )
    options.descriptors = descriptors
    options.tags = tags
    for kind in ("secret", "sensitive", "personal"):
        setattr(options, f"{kind}_fields", frozenset(
            name for name, tp in types_.items()
            if (name in tags and getattr(tags[name], f"is_{kind}"))
            or _holds_tagged(tp, f"{kind}_fields")))
    return not any(isinstance(t, _Unresolved) for t in types_.values())


def _tag_of(tp: Any) -> type | None:
    """The tag class of ``Sensitive[str]``-style annotations (``None``: not tagged)."""
    from fluvial.models.tags import Tag

    origin = typing.get_origin(tp)
    return origin if isinstance(origin, type) and issubclass(origin, Tag) else None


def _holds_tagged(tp: Any, kind: str) -> bool:
    """Whether ``tp`` is, or contains (``list[Model]``...), a model with ``kind`` fields."""
    options = getattr(tp, "_options", None)
    if isinstance(options, ModelOptions):
        return bool(getattr(options, kind))
    return any(_holds_tagged(arg, kind) for arg in typing.get_args(tp))


def _default_expr(name: str, default: Any, closures: dict[str, Any]) -> str:
    var = f"__fl_d_{name}"
    closures[var] = default
    # A shared mutable default would leak between instances: copy it.
    return f"{var}.copy()" if isinstance(default, _MUTABLE_DEFAULTS) else var


def _value_expr(
    name: str,
    src: str,
    descr: FieldDescriptor[Any],
    options: ModelOptions,
    closures: dict[str, Any],
) -> str:
    value = src
    if descr.needs_conversion():
        conv = f"__fl_cv_{name}"
        closures[conv] = descr.to_python
        value = f"{conv}({src})"
    tag = options.tags.get(name)
    if tag is not None:
        closures[f"__fl_tag_{name}"] = tag
        value = f"__fl_tag_{name}({value}, field={name!r})"
    if name in options.optionalset:
        default = _default_expr(name, options.defaults[name], closures)
        return f"{default} if {src} is None else {value}"
    return value


def _postamble(cls: type, options: ModelOptions) -> list[str]:
    lines = []
    if hasattr(cls, "__post_init__"):
        lines.append("self.__post_init__()")
    if options.validation:
        lines.append("self.validate_or_raise()")
    return lines


def _compile(name: str, source: str, closures: dict[str, Any]) -> Callable[..., Any]:
    namespace: dict[str, Any] = dict(closures)
    exec(compile(source, f"<fluvial generated {name}>", "exec"), namespace)
    fn: Callable[..., Any] = namespace[name]
    fn.__sourcecode__ = source  # type: ignore[attr-defined]
    return fn


def _unexpected_arguments(self: Any, kwargs: dict[str, Any]) -> None:
    names = ", ".join(sorted(map(str, kwargs)))
    plural = "argument" if len(kwargs) == 1 else "arguments"
    raise TypeError(f"{type(self).__name__} got unexpected {plural}: {names}")


def build_init(cls: type[Record], options: ModelOptions) -> Callable[..., None]:
    """Generate ``__init__(self, <required>, <optional>=None, *, __strict__=True, **kw)``."""
    closures: dict[str, Any] = {"__fl_unexpected": _unexpected_arguments}
    names = list(options.fields)
    required = [n for n in names if n not in options.optionalset]
    optional = [n for n in names if n in options.optionalset]
    signature = ", ".join(
        [
            "self",
            *required,
            *(f"{n}=None" for n in optional),
            "*",
            "__strict__=True",
            "__faust=None",
            "**kwargs",
        ]
    )
    items = ", ".join(
        f"{n!r}: {_value_expr(n, n, options.descriptors[n], options, closures)}" for n in names
    )
    body = [
        "if kwargs and __strict__:",
        "    __fl_unexpected(self, kwargs)",
        f"self.__dict__.update({{{items}}})",
        "if kwargs:",
        "    self.__dict__.update(kwargs)",
        *_postamble(cls, options),
    ]
    source = f"def __init__({signature}):\n" + "".join(f"    {line}\n" for line in body)
    return _compile("__init__", source, closures)


def build_json_decoder(
    cls: type[Record], options: ModelOptions, polymorph: Callable[[Any], Any]
) -> Callable[[Any], Record]:
    """Generate the JSON hot path: bytes -> msgspec Struct -> instance, no ``__init__`` call.

    ``polymorph(meta)`` returns another model class when the payload's
    ``__faust`` namespace names one this class should decode as, else None.

    msgspec cannot decode into an existing object's ``__dict__``. Measured for a
    four-field record (ns per decode, this machine): this path 450; decoding to
    a ``dict`` and installing it as ``__dict__`` after a key check 515 (a dict's
    keys are hashed and allocated per message, a Struct's field names are not);
    the Struct through ``msgspec.structs.asdict`` 440-510 (it needs the fields
    under their own names and no ``__faust`` field, so loses polymorphism and
    renames). The Struct decode is ~130 of the 450, ``object.__new__`` ~70.
    """
    names = list(options.fields)
    descriptors = options.descriptors
    struct_fields: list[Any] = []
    rename = {"fm": BLESSED_KEY}
    for i, name in enumerate(names):
        attr = f"f{i}"
        rename[attr] = descriptors[name].input_name
        if name in options.optionalset:
            struct_fields.append((attr, Any, None))
        else:
            struct_fields.append((attr, Any))
    struct_fields.append(("fm", Any, None))
    # gc=False: a wire struct holds what JSON decodes to (no cycles) and lives for
    # one call; the collector need not track it.
    struct = msgspec.defstruct(f"{cls.__name__}Wire", struct_fields, kw_only=True, rename=rename,
                               gc=False)
    closures: dict[str, Any] = {
        "__fl_sdec": msgspec.json.Decoder(struct).decode,
        "__fl_poly": polymorph,
        "__fl_new": object.__new__,
        "__fl_cls": cls,
    }
    items = ", ".join(
        f"{n!r}: {_value_expr(n, f's.f{i}', descriptors[n], options, closures)}"
        for i, n in enumerate(names)
    )
    body = [
        "s = __fl_sdec(data)",
        "if s.fm is not None:",
        "    other = __fl_poly(s.fm)",
        "    if other is not None:",
        "        return other._json_decode(data)",
        "self = __fl_new(__fl_cls)",
        f"self.__dict__ = {{{items}}}",
        *_postamble(cls, options),
        "return self",
    ]
    source = "def decode(data):\n" + "".join(f"    {line}\n" for line in body)
    return _compile("decode", source, closures)


def make_polymorph(cls: type[Record]) -> Callable[[Any], type[Record] | None]:
    """Return ``polymorph(meta)`` for ``cls``: which class a ``__faust`` key asks for.

    A registered subclass of ``cls`` is honoured, as is any model with
    ``allow_blessed_key``/``polymorphic_fields`` (Faust), or any model at all
    when ``cls`` is abstract. Unknown namespaces decode as ``cls``: payloads
    from other apps name modules this process never imported.
    """
    own_ns = cls._options.namespace
    abstract = cls.__is_abstract__

    def polymorph(meta: Any) -> type[Record] | None:
        if type(meta) is not dict:
            return None
        ns = meta.get("ns")
        if ns == own_ns or not isinstance(ns, str):
            return None
        model = registry.get(ns)
        if model is None or model is cls:
            return None
        opts = model._options
        if abstract or issubclass(model, cls) or opts.allow_blessed_key or opts.polymorphic_fields:
            return model
        return None

    return polymorph


def build_asdict(cls: type[Record], options: ModelOptions) -> tuple[Callable[..., Any], ...]:
    """Generate ``asdict(self)`` and ``_representation_shallow(self)`` for ``cls``."""
    from fluvial.models.tags import untag

    # Tagged values are written plain: the tag protects them in this process only.
    items = "".join(
        (f"{d.output_name!r}: __fl_untag(v[{name!r}]), " if name in options.tags
         else f"{d.output_name!r}: v[{name!r}], ")
        for name, d in options.descriptors.items()
        if not d.exclude
    )
    meta = f"{BLESSED_KEY!r}: {{'ns': {options.namespace!r}}}" if options.include_metadata else ""
    closures = {"__fl_untag": untag}
    asdict = _compile(
        "asdict", f"def asdict(self):\n    v = self.__dict__\n    return {{{items}}}\n",
        closures,
    )
    rep = _compile(
        "_representation_shallow",
        "def _representation_shallow(self):\n"
        f"    v = self.__dict__\n    return {{{items}{meta}}}\n",
        closures,
    )
    return asdict, rep
