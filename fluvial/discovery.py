"""``app.discover()``: import the modules of a package so their agents, tables,
timers and commands register with the app (Faust's autodiscovery)."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Iterable
from types import ModuleType

__all__ = ["DEFAULT_IGNORE", "discover_modules"]

logger = logging.getLogger(__name__)

#: Module name parts never imported by discovery (tests, scripts).
DEFAULT_IGNORE = ("test", "tests", "__main__", "conftest")


def discover_modules(packages: Iterable[str], *,
                     ignore: Iterable[str] = DEFAULT_IGNORE) -> list[ModuleType]:
    """Import each of ``packages`` and, for a package, every module under it.

    A module whose dotted name has a part in ``ignore`` is skipped. Returns the
    modules imported; an import error propagates (naming the module), since an
    agent that silently fails to register is worse.
    """
    skip = set(ignore)
    found: list[ModuleType] = []
    for name in packages:
        module = importlib.import_module(name)
        found.append(module)
        path = getattr(module, "__path__", None)
        if path is None:
            continue
        for info in pkgutil.walk_packages(path, prefix=f"{name}.", onerror=_walk_error):
            if skip & set(info.name.split(".")):
                continue
            found.append(importlib.import_module(info.name))
    logger.debug("Discovered %d modules: %s", len(found), [m.__name__ for m in found])
    return found


def _walk_error(name: str) -> None:
    raise ImportError(f"app.discover(): cannot import package {name!r}")
