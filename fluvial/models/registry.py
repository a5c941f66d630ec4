"""Namespace registry of models: resolves the ``__faust: {"ns": ...}`` key of payloads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fluvial.models.record import Record

__all__ = ["BLESSED_KEY", "maybe_model", "model_by_path", "registry"]

#: Key under which Faust stores a payload's model namespace.
BLESSED_KEY = "__faust"

#: namespace ("module.QualName" unless set with ``namespace=``) -> model class.
registry: dict[str, type[Record]] = {}


def namespace_of(data: Any) -> str | None:
    """Return the ``__faust.ns`` of a decoded payload, or None."""
    if type(data) is dict:
        meta = data.get(BLESSED_KEY)
        if type(meta) is dict:
            ns = meta.get("ns")
            if isinstance(ns, str):
                return ns
    return None


def model_by_path(module: str, qualname: str) -> type[Record] | None:
    """Return the registered model defined as ``module.qualname`` (for restricted pickle)."""
    for model in registry.values():
        if model.__module__ == module and model.__qualname__ == qualname:
            return model
    return None


def maybe_model(arg: Any) -> Any:
    """Turn a payload carrying the namespace of a registered model into that model.

    Anything else (including payloads naming a model this process does not
    know) is returned unchanged.
    """
    ns = namespace_of(arg)
    if ns is None:
        return arg
    model = registry.get(ns)
    if model is None:
        return arg
    return model.from_data(arg)
