"""Per-class model options (Faust's ``ModelOptions``): ``Order._options``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fluvial.codecs import CodecArg
    from fluvial.models.fields import FieldDescriptor

__all__ = ["ModelOptions"]


class ModelOptions:
    """Class options and field introspection of a model.

    ``fields`` maps field name to type, ``fieldpos`` position to name,
    ``defaults`` name to default value, ``descriptors`` name to descriptor.
    """

    serializer: CodecArg = None
    namespace: str = ""
    include_metadata: bool = True
    isodates: bool = False
    decimals: bool = False
    coerce: bool = False
    validation: bool = False
    allow_blessed_key: bool = False
    polymorphic_fields: bool = False
    date_parser: Callable[[Any], datetime] | None = None

    def __init__(self) -> None:
        self.coercions: dict[Any, Callable[[Any], Any]] = {}
        self.fields: Mapping[str, Any] = {}
        self.fieldset: frozenset[str] = frozenset()
        self.fieldpos: Mapping[int, str] = {}
        self.defaults: Mapping[str, Any] = {}
        self.optionalset: frozenset[str] = frozenset()
        self.required_fieldset: frozenset[str] = frozenset()
        self.descriptors: Mapping[str, FieldDescriptor[Any]] = {}

    def clone_defaults(self) -> ModelOptions:
        """Copy the class-level settings (not the fields) for a subclass."""
        new = ModelOptions()
        new.__dict__.update(
            {
                k: copy.copy(v)
                for k, v in self.__dict__.items()
                if k
                not in {
                    "fields",
                    "fieldset",
                    "fieldpos",
                    "defaults",
                    "optionalset",
                    "required_fieldset",
                    "descriptors",
                    "namespace",
                }
            }
        )
        return new

    def __repr__(self) -> str:
        return f"<ModelOptions {self.namespace or '?'}: fields={list(self.fields)}>"
