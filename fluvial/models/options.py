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
        #: Fields tagged ``Secret``/``Sensitive``/``Personal`` (or holding models
        #: with such fields), by tag kind, and the tag class of each tagged field.
        self.secret_fields: frozenset[str] = frozenset()
        self.sensitive_fields: frozenset[str] = frozenset()
        self.personal_fields: frozenset[str] = frozenset()
        self.tags: Mapping[str, type] = {}

    @property
    def has_secret_fields(self) -> bool:
        return bool(self.secret_fields)

    @property
    def has_sensitive_fields(self) -> bool:
        return bool(self.sensitive_fields)

    @property
    def has_personal_fields(self) -> bool:
        return bool(self.personal_fields)

    @property
    def tagged_fields(self) -> frozenset[str]:
        return self.secret_fields | self.sensitive_fields | self.personal_fields

    @property
    def has_tagged_fields(self) -> bool:
        return bool(self.tagged_fields)

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
                    "secret_fields",
                    "sensitive_fields",
                    "personal_fields",
                    "tags",
                }
            }
        )
        return new

    def __repr__(self) -> str:
        return f"<ModelOptions {self.namespace or '?'}: fields={list(self.fields)}>"
