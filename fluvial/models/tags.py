"""Tagged fields (Faust's ``faust.models.tags``): ``Secret``, ``Sensitive``, ``Personal``.

A field annotated ``phone: Sensitive[str]`` holds its value wrapped in a
tag. A :class:`Secret` prints as a mask (``str``, f-strings and logging show
``***********``); a :class:`Sensitive` or :class:`Personal` value refuses
to become a string at all (:class:`~fluvial.exceptions.SecurityError`), and
its ``get_value()`` returns a string usable only in the function that asked
for it: handing it to another function and reading it there raises, unless
inside ``with allow_protected_vars():``. Serialized records carry the plain
values.
"""

from __future__ import annotations

import contextvars
import sys
from collections import UserString
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Generic, TypeVar, cast

from fluvial.exceptions import SecurityError

__all__ = [
    "OpaqueTag",
    "Personal",
    "Secret",
    "Sensitive",
    "Tag",
    "TransparentTag",
    "allow_protected_vars",
    "untag",
]

T = TypeVar("T")

_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar("fluvial_allow_protected",
                                                                default=False)


@contextmanager
def allow_protected_vars() -> Iterator[None]:
    """Within this block, protected values may be read from any function."""
    token = _allowed.set(True)
    try:
        yield
    finally:
        _allowed.reset(token)


class Tag(Generic[T]):
    """A field value with a privacy tag; ``get_value()`` returns what it wraps."""

    is_secret = False
    is_sensitive = False
    is_personal = False

    def __init__(self, value: T, *, field: str | None = None) -> None:
        if isinstance(value, Tag):
            raise SecurityError("Cannot wrap: value is already tagged")
        self._value = value
        self.field = field

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = name

    def get_value(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.field}@{id(self):#x}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Tag):
            return type(other) is type(self) and bool(other._value == self._value)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((type(self), self._value))

    def __str__(self) -> str:
        raise NotImplementedError

    def __format__(self, format_spec: str) -> str:
        raise NotImplementedError


class OpaqueTag(Tag[T]):
    """A tag whose value never becomes a string."""

    def __str__(self) -> str:
        raise SecurityError(f"Attempt to use {type(self).__name__} data as a string")

    def __format__(self, format_spec: str) -> str:
        raise SecurityError(f"Attempt to use {type(self).__name__} data as a string")


class TransparentTag(Tag[T]):
    """A tag that prints as something else than its value (see :class:`Secret`)."""

    def _shown(self) -> Any:
        return self._value

    def __str__(self) -> str:
        return str(self._shown())

    def __format__(self, format_spec: str) -> str:
        return format(self._shown(), format_spec)


def _frame_id(frame: FrameType | None) -> tuple[int, str, str]:
    if frame is None:
        return (0, "", "")
    # The id alone could be reused by a later frame: the code location goes with it.
    return (id(frame), frame.f_code.co_filename, frame.f_code.co_name)


class _FrameLocal(UserString):
    """A protected string: readable only in the frame that called ``get_value()``."""

    def __init__(self, value: Any, *, field_name: str = "<unknown field>",
                 tag_type: str = "<unknown tag>") -> None:
        # Not UserString.__init__: ``data`` is a property checking the caller.
        self._value = value
        self._origin = _frame_id(sys._getframe(2))
        self._field_name = field_name
        self._tag_type = tag_type

    @property
    def data(self) -> Any:
        if _allowed.get():
            return self._value
        # data <- the UserString method using it <- the function calling that method
        if _frame_id(sys._getframe(2)) == self._origin:
            return self._value
        raise SecurityError(f"Protected {self._tag_type} value from field {self._field_name} "
                            "accessed outside the function that read it")

    @data.setter
    def data(self, value: Any) -> None:
        self._value = value

    def __repr__(self) -> str:
        return f"<Protected {type(self._value)}: {self._field_name}@{id(self):#x}>"


class _Protected(OpaqueTag[T]):
    """``get_value()`` returns a frame-local string (see :class:`_FrameLocal`)."""

    FrameLocal: type[_FrameLocal] = _FrameLocal

    def get_value(self) -> T:
        return cast(T, self.FrameLocal(self._value, field_name=self.field or "<unknown field>",
                                       tag_type=type(self).__name__.lower()))

    def __class_getitem__(cls, params: Any) -> Any:
        if isinstance(params, type) and not issubclass(params, (str, bytes)):
            raise TypeError(f"{cls.__name__} only supports str/bytes, not {params!r}")
        return super().__class_getitem__(params)  # type: ignore[misc]


class Personal(_Protected[T]):
    """Personal data: opaque; readable everywhere inside ``allow_protected_vars()``."""

    is_personal = True

    def get_value(self) -> T:
        if _allowed.get():
            return self._value
        return cast(T, self.FrameLocal(self._value, field_name=self.field or "<unknown field>",
                                       tag_type="personal"))


class Sensitive(_Protected[T]):
    """Sensitive data: opaque, and readable only where it was read."""

    is_sensitive = True


class Secret(TransparentTag[T]):
    """A secret: prints as :attr:`mask`; ``get_value()`` gives the real value."""

    is_secret = True
    mask: str = "***********"

    def _shown(self) -> Any:
        return self.mask


def untag(value: Any) -> Any:
    """The plain value of a tagged one (others are returned as they are)."""
    return value._value if isinstance(value, Tag) else value
