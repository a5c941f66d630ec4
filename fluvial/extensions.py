"""Faust's class-override settings (``App(Table=MyTable)``, ``App(Agent='proj.agents:Agent')``).

The classes fluvial instantiates for ``app.agent``, ``app.topic`` and the
table factories can be replaced by subclasses, given as the class or as
``'module:Class'`` / ``'module.Class'``.
"""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

from .exceptions import ImproperlyConfigured

__all__ = ["CLASS_SETTINGS", "resolve_class"]

#: The class-override settings fluvial honours.
CLASS_SETTINGS = ("Agent", "Topic", "Table", "SetTable", "GlobalTable", "SetGlobalTable")

T = TypeVar("T")


def resolve_class(setting: str, value: Any, base: type[T]) -> type[T]:
    """The class ``value`` names (None: ``base``), which must subclass ``base``."""
    if value is None:
        return base
    cls = _symbol(setting, value) if isinstance(value, str) else value
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ImproperlyConfigured(
            f"{setting}={value!r} must be a subclass of fluvial's {base.__name__} "
            f"({base.__module__}.{base.__name__})")
    return cls


def _symbol(setting: str, path: str) -> Any:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ImproperlyConfigured(f"{setting}={path!r}: use 'package.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured(f"{setting}={path!r}: cannot import {module_name!r}: {exc}"
                                   ) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ImproperlyConfigured(f"{setting}={path!r}: {module_name} has no {attr!r}") from exc
