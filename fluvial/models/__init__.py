"""Models: ``Record`` classes, field descriptors and the namespace registry."""

from fluvial.models import fields
from fluvial.models.fields import (
    BooleanField,
    BytesField,
    DatetimeField,
    DecimalField,
    FieldDescriptor,
    FloatField,
    IntegerField,
    StringField,
)
from fluvial.models.options import ModelOptions
from fluvial.models.record import Model, Record
from fluvial.models.registry import maybe_model, registry

__all__ = [
    "BooleanField",
    "BytesField",
    "DatetimeField",
    "DecimalField",
    "FieldDescriptor",
    "FloatField",
    "IntegerField",
    "Model",
    "ModelOptions",
    "Record",
    "StringField",
    "fields",
    "maybe_model",
    "registry",
]
