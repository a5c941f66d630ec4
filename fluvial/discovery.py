"""``autodiscover`` / ``app.discover()``: import modules so their declarations register.

Faust scans packages with venusian; importing each module of the package
has the same effect here, since ``@app.agent``, ``@app.timer`` … register
when their module is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["SKIPPED", "discover_modules", "packages_to_scan"]

#: Module names never imported by a scan (tests, scripts), as Faust's scan skips them.
SKIPPED = re.compile(r"(^|\.)(test_[^.]*|tests?|conftest|__main__|setup)(\.|$)")


def packages_to_scan(conf: Settings) -> list[str]:
    """The packages ``autodiscover`` names, as Faust reads it."""
    autodiscover = conf.autodiscover
    names: list[str] = []
    if autodiscover is False or autodiscover is None:
        return names
    if autodiscover is True:
        if not conf.origin:
            raise ImproperlyConfigured(
                "autodiscover=True scans the app's package, named by origin: give "
                "App(..., origin='myproject') (or autodiscover=['myproject', ...])")
    elif callable(autodiscover):
        names.extend(_names(autodiscover(), "autodiscover()"))
    else:
        names.extend(_names(autodiscover, "autodiscover"))
    if conf.origin:
        names.append(conf.origin)
    return names


def _names(value: object, what: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ImproperlyConfigured(
            f"{what} must give a list of package names, not {value!r}")
    names = list(value)
    for name in names:
        if not isinstance(name, str):
            raise ImproperlyConfigured(f"{what} must give package names (str), not {name!r}")
    return names


def discover_modules(names: Iterable[str]) -> list[str]:
    """Import each named module and, for a package, every module under it."""
    imported: list[str] = []
    for name in dict.fromkeys(names):
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ImproperlyConfigured(f"autodiscover: cannot import {name!r}: {exc}") from exc
        imported.append(name)
        path = getattr(module, "__path__", None)
        if path is not None:
            imported.extend(_import_package(path, f"{name}."))
    return imported


def _import_package(path: Iterable[str], prefix: str) -> list[str]:
    imported = []
    for info in pkgutil.iter_modules(path, prefix):
        if SKIPPED.search(info.name):
            continue
        module = importlib.import_module(info.name)
        imported.append(info.name)
        if info.ispkg:
            imported.extend(_import_package(module.__path__, f"{info.name}."))
    return imported
