"""``Record``: Faust's dictionary model, with a compiled JSON decode path.

>>> class Point(Record, serializer="json"):
...     x: int
...     y: int = 0
>>> Point(1).dumps()
b'{"x":1,"y":0,"__faust":{"ns":"fluvial.models.record.Point"}}'
>>> Point.loads(b'{"x": 3, "y": 4}')
<Point: x=3, y=4>
"""

from __future__ import annotations

import operator
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from fluvial.codecs import JSON_CODEC, Codec, CodecArg, get_codec, json_dumps
from fluvial.exceptions import (
    AbstractModelError,
    FieldValidationError,
    ModelDecodeError,
    ModelError,
    SerializationError,
)
from fluvial.models import building
from fluvial.models.options import ModelOptions
from fluvial.models.registry import BLESSED_KEY, registry

__all__ = ["Model", "Record"]

R = TypeVar("R", bound="Record")


def _plain(value: Any) -> Any:
    if getattr(value, "__is_model__", False):
        return value.to_representation()
    if type(value) is dict:
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value


class Record:
    """Base class of user models: annotated fields, class options as keywords.

    Options: ``serializer``, ``namespace``, ``include_metadata`` (default
    True: payloads carry ``"__faust": {"ns": ...}``), ``isodates``,
    ``decimals``, ``coerce``, ``validation`` (implies coerce), ``abstract``,
    ``allow_blessed_key``, ``polymorphic_fields``, ``date_parser``.
    """

    __is_model__: ClassVar[bool] = True
    __is_abstract__: ClassVar[bool] = True
    _options: ClassVar[ModelOptions] = ModelOptions()
    _fl_unresolved: ClassVar[bool] = False
    # staticmethod(attrgetter(*fields)): the tuple compared/hashed by __eq__/__lt__/__hash__.
    _fl_key: ClassVar[Any]
    _fl_polymorph: ClassVar[Callable[[Any], Any]]
    _fl_json_decode: ClassVar[Callable[[Any], Any] | None] = None
    _fl_custom_init: ClassVar[bool] = False
    #: ``lazy_creation=True``: what ``make_final()`` still has to do (Faust's attribute).
    _pending_finalizers: ClassVar[list[Callable[[], None]] | None] = None
    #: The payload key naming a record's model (``{"__faust": {"ns": ...}}``).
    _blessed_key: ClassVar[str] = BLESSED_KEY

    def __init_subclass__(
        cls,
        *,
        serializer: CodecArg = None,
        namespace: str | None = None,
        include_metadata: bool | None = None,
        isodates: bool | None = None,
        abstract: bool = False,
        allow_blessed_key: bool | None = None,
        decimals: bool | None = None,
        coerce: bool | None = None,
        coercions: Mapping[Any, Callable[[Any], Any]] | None = None,
        polymorphic_fields: bool | None = None,
        validation: bool | None = None,
        date_parser: Callable[[Any], datetime] | None = None,
        lazy_creation: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        options = cls._options.clone_defaults()
        custom = cls.__dict__.get("Options")
        if custom is not None:  # Faust's inner ``class Options:``, taken off the class
            options.__dict__.update(
                {k: v for k, v in vars(custom).items() if not k.startswith("__")}
            )
            del cls.Options  # type: ignore[attr-defined]
        if "asdict" in cls.__dict__:
            raise ModelError(f"{cls.__name__} overrides asdict(): override "
                             "_prepare_dict(self, payload) to change the payload instead")
        given = {
            "serializer": serializer,
            "include_metadata": include_metadata,
            "isodates": isodates,
            "decimals": decimals,
            "allow_blessed_key": allow_blessed_key,
            "polymorphic_fields": polymorphic_fields,
            "coerce": coerce,
            "date_parser": date_parser,
        }
        for key, value in given.items():
            if value is not None:
                setattr(options, key, value)
        if coercions:
            options.coercions.update(coercions)
        if validation is not None:
            options.validation = validation
            if validation:
                options.coerce = True  # as in Faust: validation implies coercion
        options.namespace = namespace or _canonical_name(cls)
        cls._options = options
        cls._fl_json_decode = None
        # Field types are resolved when first needed anyway (forward references):
        # make_final() does it now.
        cls._pending_finalizers = [cls._resolve_types] if lazy_creation else None
        if abstract:
            cls.__is_abstract__ = True
            return
        cls.__is_abstract__ = False
        building.check_default_order(cls)
        cls._fl_unresolved = not building.setup_fields(cls, options, Record)
        fields = list(options.fields)
        cls._fl_key = staticmethod(_tuple_getter(fields))
        registry[options.namespace] = cls
        asdict, representation = building.build_asdict(cls, options)
        if cls._prepare_dict is not Record._prepare_dict:
            asdict, representation = _prepared(asdict), _prepared(representation)
        cls.asdict = asdict  # type: ignore[method-assign]
        cls._representation_shallow = representation  # type: ignore[method-assign]
        cls._fl_custom_init = "__init__" in cls.__dict__
        cls._set_init(building.build_init(cls, options))

    @classmethod
    def _set_init(cls, init: Callable[..., None]) -> None:
        """The generated ``__init__``; a class with its own calls it as ``_model_init``."""
        cls._model_init = init  # type: ignore[method-assign]
        if not cls._fl_custom_init:
            cls.__init__ = init  # type: ignore[method-assign]

    # Replaced per class by the generated __init__ (see building.build_init).
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AbstractModelError(
            f"{type(self).__name__} is abstract: subclass it with annotated fields to "
            "create instances"
        )

    def _model_init(self, *args: Any, **kwargs: Any) -> None:
        """Set the fields from the arguments (for an ``__init__`` of your own to call)."""
        raise AbstractModelError(f"{type(self).__name__} is abstract")

    def _prepare_dict(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Override to change what ``asdict()`` and serialization produce."""
        return payload

    @classmethod
    def make_final(cls) -> None:
        """Finish a ``lazy_creation=True`` class now (resolve its field types)."""
        pending, cls._pending_finalizers = cls._pending_finalizers, None
        for finalize in pending or ():
            finalize()

    @classmethod
    def _maybe_namespace(cls, data: Any, *,
                         preferred_type: type[Any] | None = None) -> type[Record] | None:
        """The model a payload's ``__faust`` namespace names (Faust's rules).

        With no preferred type (or the model base class) any registered model
        is taken, and an unknown namespace raises ``KeyError``; otherwise only
        models with ``allow_blessed_key``/``polymorphic_fields``.
        """
        if not isinstance(data, Mapping):
            return None
        meta = data.get(BLESSED_KEY)
        if not isinstance(meta, Mapping) or "ns" not in meta:
            return None
        abstract = preferred_type is None or preferred_type is Record
        model = registry.get(meta["ns"])
        if model is None:
            if abstract:
                raise KeyError(meta["ns"])
            return None
        opts = model._options
        if abstract or opts.allow_blessed_key or opts.polymorphic_fields:
            return model
        return None

    # -- construction from data --------------------------------------------

    @classmethod
    def _resolve_types(cls) -> None:
        """Retry forward references that could not be evaluated at class creation."""
        if cls._fl_unresolved and not cls.__is_abstract__:
            cls._fl_unresolved = not building.setup_fields(cls, cls._options, Record)
            if not cls._fl_unresolved:
                cls._set_init(building.build_init(cls, cls._options))
                cls._fl_json_decode = None

    @classmethod
    def from_data(cls: type[R], data: Any, *, preferred_type: type[Any] | None = None) -> R:
        """Create an instance from a decoded mapping (its ``__faust`` ns may pick a subclass)."""
        if getattr(data, "__is_model__", False):
            return data  # type: ignore[no-any-return]
        if not isinstance(data, Mapping):
            raise TypeError(
                f"{cls.__name__}.from_data needs a mapping, got {type(data).__name__}: {data!r}"
            )
        return cls._from_dict(dict(data))

    @classmethod
    def _from_dict(cls: type[R], data: dict[str, Any]) -> R:
        # ``data`` is owned by the caller and may be modified.
        meta = data.pop(BLESSED_KEY, None)
        if meta is not None:
            other = cls._polymorph()(meta)
            if other is not None:
                return other._from_dict(data)  # type: ignore[return-value]
        if cls.__is_abstract__:
            raise TypeError(
                f"cannot create abstract model {cls.__name__}: the payload names no "
                f"registered model (namespace {meta!r})"
            )
        cls._resolve_types()
        for name, descr in cls._options.descriptors.items():
            if descr.input_name != name and descr.input_name in data:
                data[name] = data.pop(descr.input_name)
        return cls(**data, __strict__=False)

    @classmethod
    def _from_data_field(cls, value: Any) -> Any:
        """Converter for fields annotated with this model (nested records)."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls._from_dict(dict(value))
        return value

    @classmethod
    def _polymorph(cls) -> Callable[[Any], type[Record] | None]:
        poly = cls.__dict__.get("_fl_polymorph")
        if poly is None:
            poly = building.make_polymorph(cls)
            cls._fl_polymorph = poly
        return poly

    @classmethod
    def _json_decode(cls: type[R], data: Any) -> R:
        """Decode JSON bytes straight into an instance (the hot path)."""
        decode = cls.__dict__.get("_fl_json_decode")
        if decode is None:
            decode = cls._build_json_decoder()
        return decode(data)  # type: ignore[no-any-return]

    @classmethod
    def _build_json_decoder(cls) -> Callable[[Any], Any]:
        if cls.__is_abstract__:

            def decode_abstract(data: Any) -> Any:
                return cls._from_dict(JSON_CODEC.loads(data))

            cls._fl_json_decode = decode_abstract
            return decode_abstract
        cls._resolve_types()
        decode = building.build_json_decoder(cls, cls._options, cls._polymorph())
        cls._fl_json_decode = decode
        return decode

    @classmethod
    def _decoder(cls: type[R], serializer: CodecArg = None) -> Callable[[Any], R]:
        """Return a compiled ``decode(bytes) -> instance`` for ``serializer`` (json default)."""
        return cls._decoder_for(get_codec(cls._options.serializer or serializer or "json"))

    @classmethod
    def _decoder_for(cls: type[R], codec: Codec) -> Callable[[Any], R]:
        """Return a compiled decoder for exactly ``codec`` (no class option involved)."""
        if codec is JSON_CODEC:
            decode = cls.__dict__.get("_fl_json_decode") or cls._build_json_decoder()
            return decode
        codec_loads = codec.loads
        from_data = cls.from_data
        return lambda data: from_data(codec_loads(data))

    @classmethod
    def loads(
        cls: type[R],
        s: bytes,
        *,
        default_serializer: CodecArg = None,
        serializer: CodecArg = None,
    ) -> R:
        """Decode bytes; the class's ``serializer`` option wins, as in Faust.

        Raises :class:`SerializationError` (or its :class:`ValidationError`)
        whatever is wrong with ``s``.
        """
        if default_serializer is not None:
            warnings.warn("default_serializer is deprecated, use serializer",
                          DeprecationWarning, stacklevel=2)
        decode = cls._decoder(serializer or default_serializer)
        try:
            return decode(s)
        except SerializationError:
            raise
        except Exception as exc:
            raise _not_decodable(cls, exc) from exc

    @classmethod
    def loads_many(cls: type[R], payloads: Iterable[bytes], serializer: CodecArg = None) -> list[R]:
        """Decode a batch of payloads with one compiled decoder."""
        decode = cls._decoder(serializer)
        try:
            return [decode(p) for p in payloads]
        except SerializationError:
            raise
        except Exception as exc:
            raise _not_decodable(cls, exc) from exc

    # -- representation -------------------------------------------------------

    def asdict(self) -> dict[str, Any]:
        """Fields as a dict (nested records stay records), keyed by output name."""
        values = self.__dict__
        return {
            d.output_name: values[name]
            for name, d in self._options.descriptors.items()
            if not d.exclude
        }

    def _representation_shallow(self) -> dict[str, Any]:
        payload = self.asdict()
        options = self._options
        if options.include_metadata:
            payload[BLESSED_KEY] = {"ns": options.namespace}
        return payload

    def to_representation(self) -> dict[str, Any]:
        """Plain data: nested records become dicts; ``__faust`` added if include_metadata."""
        payload = {k: _plain(v) for k, v in self.asdict().items()}
        options = self._options
        if options.include_metadata:
            payload[BLESSED_KEY] = {"ns": options.namespace}
        return payload

    def __json__(self) -> Any:
        return self._representation_shallow()

    def dumps(self, *, serializer: CodecArg = None) -> bytes:
        """Encode with ``serializer``, else the class's serializer, else json."""
        codec = get_codec(serializer or self._options.serializer or "json")
        if codec is JSON_CODEC:
            return json_dumps(self._representation_shallow())
        return codec.dumps(self.to_representation())

    def derive(self: R, *objects: Record, **fields: Any) -> R:
        """Return a copy with fields taken from ``objects`` then ``fields``."""
        data = {name: self.__dict__[name] for name in self._options.fields}
        for obj in objects:
            data.update({name: obj.__dict__[name] for name in obj._options.fields})
        data.update(fields)
        return type(self)(**data)

    # -- validation ---------------------------------------------------------

    def validate(self) -> list[FieldValidationError]:
        """Return every validation error of this instance (empty when valid)."""
        values = self.__dict__
        return [
            error
            for name, descr in self._options.descriptors.items()
            for error in descr.validate_all(values.get(name))
        ]

    def validate_or_raise(self) -> None:
        errors = self.validate()
        if errors:
            raise errors[0]

    def is_valid(self) -> bool:
        return not self.validate()

    @property
    def validation_errors(self) -> list[FieldValidationError]:
        return self.validate()

    # -- comparison -----------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(self._fl_key(self) == other._fl_key(other))
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(self._fl_key(self) != other._fl_key(other))
        return NotImplemented

    def __lt__(self, other: Record) -> bool:
        if other.__class__ is self.__class__:
            return bool(self._fl_key(self) < other._fl_key(other))
        return NotImplemented

    def __le__(self, other: Record) -> bool:
        if other.__class__ is self.__class__:
            return bool(self._fl_key(self) <= other._fl_key(other))
        return NotImplemented

    def __gt__(self, other: Record) -> bool:
        if other.__class__ is self.__class__:
            return bool(self._fl_key(self) > other._fl_key(other))
        return NotImplemented

    def __ge__(self, other: Record) -> bool:
        if other.__class__ is self.__class__:
            return bool(self._fl_key(self) >= other._fl_key(other))
        return NotImplemented

    def __hash__(self) -> int:
        # Faust hashes records by their field values.
        return hash(self._fl_key(self))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if not k.startswith("__"))
        return f"<{type(self).__name__}: {shown}>"


def _prepared(build: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """``build`` passed through the class's ``_prepare_dict``."""
    def prepared(self: Any) -> dict[str, Any]:
        return self._prepare_dict(build(self))  # type: ignore[no-any-return]
    return prepared


def _tuple_getter(fields: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    if len(fields) == 1:
        single = operator.attrgetter(fields[0])
        return lambda obj: (single(obj),)
    if not fields:
        return lambda obj: ()
    getter: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*fields)
    return getter


def _canonical_name(cls: type) -> str:
    """``module.QualName``; for ``__main__`` the script's dotted name, as Faust does.

    A program started as ``python orders.py`` registers ``orders.Order``, so
    its payloads match those written when the module is imported by name.
    """
    module = cls.__module__
    if module == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if main_file:
            path = Path(main_file).absolute()
            parts = [path.stem]
            parent = path.parent
            while (parent / "__init__.py").exists():
                parts.append(parent.name)
                parent = parent.parent
            module = ".".join(reversed(parts))
    return f"{module}.{cls.__qualname__}"


#: Faust's base model name; Record is the only kind of model fluvial has.
Model = Record


def _not_decodable(cls: type[Any], exc: Exception) -> ModelDecodeError:
    return ModelDecodeError(f"cannot decode {cls.__name__}: {type(exc).__name__}: {exc}")
