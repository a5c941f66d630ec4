"""``import faust`` resolves to fluvial: ``faust.X`` is the module ``fluvial.X``.

A pytest plugin (``-p tests.conformance.faust_alias``): importing it puts a
meta path finder first on ``sys.meta_path``, so faust-streaming's own tests
run against fluvial's modules unchanged. ``faust`` must not be installed
beside it for that to mean anything: the finder is asked first either way.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

ALIAS = "faust"
TARGET = "fluvial"


class _Existing(importlib.abc.Loader):
    """Hands out an already imported module under another name."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the fluvial module is imported already."""


class FaustAlias(importlib.abc.MetaPathFinder):
    """``faust[.sub]`` -> ``fluvial[.sub]``."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != ALIAS and not fullname.startswith(ALIAS + "."):
            return None
        real = TARGET + fullname[len(ALIAS):]
        module = importlib.import_module(real)
        is_package = hasattr(module, "__path__")
        return importlib.machinery.ModuleSpec(fullname, _Existing(module),
                                              is_package=is_package)


def install() -> None:
    if not any(isinstance(f, FaustAlias) for f in sys.meta_path):
        sys.meta_path.insert(0, FaustAlias())


install()
