"""Field descriptors: ``Order.account_id`` is a :class:`FieldDescriptor`.

A descriptor knows its field's name, type, default and owning model; it
converts and validates values, and works as a key function
(``stream.group_by(Order.account_id)``, ``Order.account_id(order)``).

It defines ``__get__`` only (no ``__set__``), so on instances the value in
``__dict__`` wins and reading ``order.account_id`` costs a plain attribute
lookup; only class access (``Order.account_id``) reaches the descriptor.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, get_args

from fluvial.exceptions import FieldValidationError
from fluvial.models.convert import Converter, compile_converter, is_model_class, parse_datetime

if TYPE_CHECKING:
    from fluvial.models.record import Record

__all__ = [
    "BooleanField",
    "BytesField",
    "DatetimeField",
    "DecimalField",
    "FieldDescriptor",
    "FloatField",
    "IntegerField",
    "NumberField",
    "StringField",
    "field_for_type",
]

T = TypeVar("T")

_UNCOMPILED: Any = object()


def _without_none(tp: Any) -> Any:
    members = [a for a in get_args(tp) if a is not type(None)]
    return members[0] if len(members) == 1 else tp


class FieldDescriptor(Generic[T]):
    """Describes one field of a Record (Faust's ``FieldDescriptor``).

    Used as a default value it configures the field:
    ``name: str = StringField(max_length=10)``.
    """

    field: str
    input_name: str
    output_name: str
    type: Any
    model: type[Record]
    required: bool
    default: Any
    parent: FieldDescriptor[Any] | None
    coerce: bool
    exclude: bool
    #: Faust coerces some nested fields on first read; fluvial converts them when
    #: the record is made, so never lazily (a plain attribute, as Faust's is).
    lazy_coercion: bool = False

    def __init__(
        self,
        *,
        field: str | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
        type: Any = None,
        model: Any = None,
        required: bool = True,
        default: Any = None,
        parent: FieldDescriptor[Any] | None = None,
        coerce: bool | None = None,
        exclude: bool | None = None,
        date_parser: Callable[[Any], datetime] | None = None,
        **options: Any,
    ) -> None:
        self.field = field or ""
        self.input_name = input_name or self.field
        self.output_name = output_name or self.input_name
        self.type = type
        self.model = model
        self.required = required
        self.default = default
        self.parent = parent
        self.coerce = bool(coerce)
        self.exclude = bool(exclude)
        self.date_parser = date_parser
        self.options = options
        self._converter: Any = _UNCOMPILED

    # -- descriptor protocol -------------------------------------------------

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = name
        self.input_name = self.input_name or name
        self.output_name = self.output_name or self.input_name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        try:
            return instance.__dict__[self.field]
        except KeyError:
            raise AttributeError(self.field) from None

    def __getattr__(self, name: str) -> FieldDescriptor[Any]:
        # ``Order.customer.name``: a descriptor for a field of a nested model,
        # whose getattr() walks order.customer.name.
        if name.startswith("_"):
            raise AttributeError(name)
        typ = _without_none(self.__dict__.get("type"))
        if is_model_class(typ) and name in typ._options.descriptors:
            nested: FieldDescriptor[Any] = typ._options.descriptors[name]
            return nested.clone(parent=self)
        raise AttributeError(f"{type(self).__name__} {self!r} has no attribute {name!r}")

    def clone(self, **kwargs: Any) -> FieldDescriptor[T]:
        """Return a copy of this descriptor with some attributes replaced."""
        return type(self)(**{**self.as_dict(), **kwargs})

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "input_name": self.input_name,
            "output_name": self.output_name,
            "type": self.type,
            "model": self.model,
            "required": self.required,
            "default": self.default,
            "parent": self.parent,
            "coerce": self.coerce,
            "exclude": self.exclude,
            "date_parser": self.date_parser,
            **self.options,
        }

    @property
    def related_models(self) -> set[type[Record]]:
        """The model classes this field's type holds (``list[Order]``: ``{Order}``)."""
        found: set[type[Record]] = set()
        pending = [self.type]
        while pending:
            tp = pending.pop()
            if is_model_class(tp):
                found.add(tp)
            else:
                pending.extend(get_args(tp))
        return found

    # -- key function ----------------------------------------------------------

    def getattr(self, obj: Any) -> T:
        """Return this field's value in ``obj``, following parents (``order.customer.name``)."""
        for name in self._path():
            obj = getattr(obj, name)
        return cast(T, obj)

    def getter(self) -> Callable[[Any], T]:
        """A fast key function for this field (``operator.attrgetter`` on its path)."""
        return operator.attrgetter(".".join(self._path()))

    def __call__(self, obj: Any) -> T:
        return self.getattr(obj)

    def _path(self) -> list[str]:
        path: list[str] = []
        node: FieldDescriptor[Any] | None = self
        while node is not None:
            path.append(node.field)
            node = node.parent
        path.reverse()
        return path

    @property
    def ident(self) -> str:
        """``Model.field`` (used for instance in repartition topic names)."""
        return f"{self.model.__name__}.{self.field}" if self.model else self.field

    def __repr__(self) -> str:
        default = "" if self.required else f" = {self.default!r}"
        typ = getattr(self.type, "__name__", self.type)
        return f"<{type(self).__name__}: {self.ident}: {typ}{default}>"

    # -- conversion ---------------------------------------------------------

    @property
    def converter(self) -> Converter | None:
        """Structural converter for decoded values (models, containers, dates)."""
        conv = self._converter
        if conv is _UNCOMPILED:
            if self.model is not None:
                self.model._resolve_types()
            opts = self.model._options if self.model is not None else None
            conv = compile_converter(self.type, opts) if opts is not None else None
            if not isinstance(self.type, str):  # still a forward reference: retry later
                self._converter = conv
        return cast("Converter | None", conv)

    def needs_conversion(self) -> bool:
        """True if ``to_python`` may change a value (so constructors must call it)."""
        return self.coerce or isinstance(self.type, str) or self.converter is not None

    def to_python(self, value: Any) -> Any:
        """Convert a value read from data (or given to the constructor) for this field."""
        try:
            conv = self.converter
            return self.prepare_value(conv(value) if conv is not None else value)
        except (TypeError, ValueError, ArithmeticError) as exc:
            if self.model is not None and self.model._options.validation:
                raise self.validation_error(
                    f"{self.field} is not correct type for {self}, got {type(value)!r}: {exc!r}"
                ) from exc
            raise

    def prepare_value(self, value: Any, *, coerce: bool | None = None) -> Any:
        """Coerce ``value`` to the field type when coercion is on (subclasses)."""
        return value

    def should_coerce(self, value: Any, coerce: bool | None = None) -> bool:
        c = self.coerce if coerce is None else coerce
        return c and (self.required or value is not None)

    # -- validation ---------------------------------------------------------

    def validate_all(self, value: Any) -> Iterator[FieldValidationError]:
        """Yield every validation error for ``value`` (type errors included)."""
        try:
            prepared = self.prepare_value(value, coerce=True)
        except Exception as exc:  # any failure of a (custom) field is a validation error
            yield self.validation_error(
                f"{self.field} is not correct type for {self}, got {type(value)!r}: {exc!r}"
            )
            return
        if prepared is not None or self.required:
            yield from self.validate(prepared)

    def validate(self, value: Any) -> Iterable[FieldValidationError]:
        """Yield errors for a value of the right type (subclasses add rules)."""
        return iter(())

    def validation_error(self, reason: str) -> FieldValidationError:
        return FieldValidationError(reason, field=self)


class BooleanField(FieldDescriptor[bool]):
    def validate(self, value: Any) -> Iterable[FieldValidationError]:
        if not isinstance(value, bool):
            yield self.validation_error(f"{self.field} must be True or False, of type bool")

    def prepare_value(self, value: Any, *, coerce: bool | None = None) -> Any:
        return bool(value) if self.should_coerce(value, coerce) else value


class NumberField(FieldDescriptor[T]):
    def __init__(self, *, max_value: Any = None, min_value: Any = None, **kwargs: Any) -> None:
        super().__init__(max_value=max_value, min_value=min_value, **kwargs)
        self.max_value = max_value
        self.min_value = min_value

    def validate(self, value: Any) -> Iterable[FieldValidationError]:
        if self.max_value is not None and value > self.max_value:
            yield self.validation_error(f"{self.field} cannot be more than {self.max_value}")
        if self.min_value is not None and value < self.min_value:
            yield self.validation_error(f"{self.field} must be at least {self.min_value}")


class IntegerField(NumberField[int]):
    def prepare_value(self, value: Any, *, coerce: bool | None = None) -> Any:
        return int(value) if self.should_coerce(value, coerce) else value


class FloatField(NumberField[float]):
    def prepare_value(self, value: Any, *, coerce: bool | None = None) -> Any:
        return float(value) if self.should_coerce(value, coerce) else value


class DecimalField(NumberField[Decimal]):
    def __init__(
        self,
        *,
        max_digits: int | None = None,
        max_decimal_places: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(max_digits=max_digits, max_decimal_places=max_decimal_places, **kwargs)
        self.max_digits = max_digits
        self.max_decimal_places = max_decimal_places

    def prepare_value(self, value: Any, *, coerce: bool | None = None) -> Any:
        if not self.should_coerce(value, coerce) or isinstance(value, Decimal):
            return value
        return Decimal(str(value)) if isinstance(value, float) else Decimal(value)

    def validate(self, value: Any) -> Iterable[FieldValidationError]:
        if not value.is_finite():
            yield self.validation_error(f"Illegal value in decimal: {value!r}")
            return
        yield from super().validate(value)
        _sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)  # finite decimals have an int exponent
        places = max(0, -exponent)
        if self.max_decimal_places is not None and places > self.max_decimal_places:
            yield self.validation_error(
                f"{self.field} must have at most {self.max_decimal_places} decimal places"
            )
        whole = max(0, len(digits) + exponent)
        if self.max_digits is not None and whole > self.max_digits:
            yield self.validation_error(f"{self.field} must have at most {self.max_digits} digits")


class _CharField(FieldDescriptor[T]):
    def __init__(
        self,
        *,
        max_length: int | None = None,
        min_length: int | None = None,
        trim_whitespace: bool = False,
        allow_blank: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            max_length=max_length,
            min_length=min_length,
            trim_whitespace=trim_whitespace,
            allow_blank=allow_blank,
            **kwargs,
        )
        self.max_length = max_length
        self.min_length = min_length
        self.trim_whitespace = trim_whitespace
        self.allow_blank = allow_blank

    def validate(self, value: Any) -> Iterable[FieldValidationError]:
        length = len(value)
        if not self.allow_blank and not length:
            yield self.validation_error(f"{self.field} cannot be left blank")
        if self.min_length is not None and length < self.min_length:
            yield self.validation_error(
                f"{self.field} must have at least {self.min_length} characters"
            )
        if self.max_length is not None and length > self.max_length:
            yield self.validation_error(
                f"{self.field} must have at most {self.max_length} characters"
            )


class StringField(_CharField[str]):
    def prepare_value(self, value: Any, *, coerce: bool | None = None) -> Any:
        if not self.should_coerce(value, coerce):
            return value
        text = value if isinstance(value, str) else str(value)
        return text.strip() if self.trim_whitespace else text


class BytesField(_CharField[bytes]):
    """Bytes; a ``str`` is encoded with ``encoding`` (UTF-8) and ``errors`` (strict)."""

    def __init__(self, *, encoding: str = "utf-8", errors: str = "strict",
                 **kwargs: Any) -> None:
        super().__init__(encoding=encoding, errors=errors, **kwargs)
        self.encoding = encoding
        self.errors = errors

    def prepare_value(self, value: Any, *, coerce: bool | None = None) -> Any:
        if not self.should_coerce(value, coerce):
            return value
        data = (value.encode(self.encoding, self.errors) if isinstance(value, str)
                else bytes(value))
        return data.strip() if self.trim_whitespace else data


class DatetimeField(FieldDescriptor[datetime]):
    def prepare_value(self, value: Any, *, coerce: bool | None = None) -> Any:
        if self.should_coerce(value, coerce) and not isinstance(value, datetime):
            parser = self.date_parser or parse_datetime
            return parser(value)
        return value


_TYPE_TO_FIELD: dict[type, type[FieldDescriptor[Any]]] = {
    bool: BooleanField,
    int: IntegerField,
    float: FloatField,
    Decimal: DecimalField,
    str: StringField,
    bytes: BytesField,
    datetime: DatetimeField,
}


def field_for_type(typ: Any) -> type[FieldDescriptor[Any]]:
    """Return the descriptor class Faust would pick for a field of type ``typ``."""
    if isinstance(typ, type):
        for base in typ.__mro__:
            descr = _TYPE_TO_FIELD.get(base)
            if descr is not None:
                return descr
    return FieldDescriptor
