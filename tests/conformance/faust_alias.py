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
from typing import Any

import pytest

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


@pytest.fixture
def app() -> Any:
    """Faust's test suite's ``app`` fixture: an app on the in-process broker."""
    import fluvial

    return fluvial.App("conformance-app", broker="memory://conformance")


#: Tests of how Faust is built rather than what it does: skipped, with the reason.
IMPLEMENTATION_DETAILS = {
    "test_active_base_is_one_of_the_two":
        "checks which base class Faust's field descriptors have (its Cython or Python "
        "_FieldDescriptorBase), an implementation detail of Faust",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        reason = IMPLEMENTATION_DETAILS.get(item.name)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
