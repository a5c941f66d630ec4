"""Faust's public module paths resolve under fluvial (``faust.X`` -> ``fluvial.X``)."""

from __future__ import annotations

import importlib

import pytest
from fluvial.app.router import Router

import fluvial
from fluvial.serializers import codecs as faust_codecs
from fluvial.types import ModelT
from fluvial.types.enums import ProcessingGuarantee

#: Module path -> names Faust users import from it.
PATHS = {
    "windows": ["TumblingWindow", "HoppingWindow", "SlidingWindow", "Window"],
    "models.tags": ["Secret", "Sensitive", "Personal", "allow_protected_vars"],
    "models.fields": ["FieldDescriptor", "StringField", "DecimalField"],
    "exceptions": ["SecurityError", "AlreadyConfiguredWarning", "ValidationError",
                   "ImproperlyConfigured"],
    "types": ["ModelT", "TP", "Message"],
    "types.enums": ["ProcessingGuarantee"],
    "types.settings": ["Settings"],
    "utils.json": ["dumps", "loads", "JSONEncoder", "str_to_decimal"],
    "sensors": ["Monitor", "Sensor"],
    "serializers": ["Registry", "Schema", "codecs"],
    "serializers.codecs": ["Codec", "dumps", "loads", "get_codec", "register"],
    "streams": ["Stream", "maybe_forward"],
    "app.router": ["Router"],
    "": ["App", "Record", "Worker", "Service", "uuid", "windows", "Table", "SetTable"],
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_faust_module_path_resolves(path: str) -> None:
    module = importlib.import_module(f"fluvial.{path}" if path else "fluvial")
    missing = [name for name in PATHS[path] if not hasattr(module, name)]
    assert not missing, f"fluvial.{path} lacks {missing}"


def test_the_paths_are_the_same_objects() -> None:
    assert Router is fluvial.router.Router
    assert faust_codecs.get_codec is fluvial.codecs.get_codec
    assert ModelT is fluvial.Record
    assert ProcessingGuarantee.EXACTLY_ONCE == "exactly_once"
    app = fluvial.App("paths", processing_guarantee=ProcessingGuarantee.EXACTLY_ONCE)
    assert app.conf.exactly_once
