"""Finding and describing registered models (``fluvial models``, ``fluvial model NAME``)."""

from __future__ import annotations

import datetime
import decimal
import difflib
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..models import Record

__all__ = ["find_model", "model_fields", "model_help", "model_name", "registered_models"]

_SHOWN_BY_NAME = (int, float, str, bytes, bool, datetime.datetime, datetime.date, decimal.Decimal)


def registered_models(*, builtins: bool = False) -> list[type[Record]]:
    """Every model class imported so far, by namespace (``@``-namespaces are built in)."""
    from ..models import registry

    return [model for ns, model in sorted(registry.items())
            if builtins or not ns.startswith("@")]


def model_name(model: type[Record]) -> str:
    return model._options.namespace or f"{model.__module__}.{model.__qualname__}"


def model_help(model: type[Record]) -> str:
    doc = (model.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else "<N/A>"


def find_model(name: str, *, origin: str | None = None) -> type[Record]:
    """The model registered as ``name``, ``origin.name``, or (if unique) ``*.name``."""
    from ..models import registry

    for candidate in (name, f"{origin}.{name}" if origin else None):
        if candidate and candidate in registry:
            return registry[candidate]
    matches = [m for ns, m in registry.items() if ns.endswith("." + name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise click.UsageError(
            f"Model name {name!r} is ambiguous: {', '.join(sorted(map(model_name, matches)))}"
        )
    # Compare with both full namespaces and their last part ("Order").
    by_short = {ns.rpartition(".")[2]: ns for ns in registry}
    close = [by_short.get(c, c) for c in
             difflib.get_close_matches(name, [*registry, *by_short], n=3)]
    close = list(dict.fromkeys(close))
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise click.UsageError(f"No model {name!r}.{hint} Run `fluvial models` for a list.")


def model_fields(model: type[Record]) -> list[tuple[str, str, str]]:
    """``(field, type, default)`` rows; the default of a required field shows as ``*``."""
    options = model._options
    return [
        (name, type_name(typ), repr(options.defaults[name]) if name in options.defaults else "*")
        for name, typ in options.fields.items()
    ]


def type_name(typ: Any) -> str:
    if typ in _SHOWN_BY_NAME:
        return str(typ.__name__)
    if isinstance(typ, type):
        return f"{typ.__module__}.{typ.__qualname__}"
    return str(typ).replace("typing.", "")
