"""At start-up: every topic's schemas registered (or checked) before the first event.

An incompatible schema then stops the worker as it starts, with the
registry's verdict and the subject, instead of at some later send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fluvial.codecs import get_codec

from .codec import BoundSchemaCodec, SchemaCodec

if TYPE_CHECKING:
    from fluvial.app import App

__all__ = ["bound_codecs", "prepare_schemas"]

logger = logging.getLogger(__name__)


def bound_codecs(app: App, topics: Iterable[Any]) -> list[BoundSchemaCodec]:
    """The schema registry codecs of ``topics``' keys and values, bound to each topic."""
    from fluvial.channels import Topic

    conf = app.conf
    found: dict[tuple[str, str], BoundSchemaCodec] = {}
    for topic in topics:
        if not isinstance(topic, Topic):
            continue
        schema = topic.schema
        for field, arg, default, typ in (
            ("key", schema.key_serializer, conf.key_serializer, schema.key_type),
            ("value", schema.value_serializer, conf.value_serializer, schema.value_type),
        ):
            codec = get_codec(arg or default)
            if not isinstance(codec, SchemaCodec):
                continue
            for name in topic.topics:
                found.setdefault((name, field), codec.bind(app, name, field, typ))
    return list(found.values())


async def prepare_schemas(app: App, topics: Iterable[Any]) -> list[str]:
    """Register (or look up) the schemas of ``topics``; return the subjects checked.

    Raises :class:`~fluvial.schemas.SchemaIncompatible`,
    :class:`~fluvial.schemas.SchemaNotRegistered` or
    :class:`~fluvial.schemas.SchemaRegistryUnavailable`.
    """
    subjects = []
    for bound in bound_codecs(app, topics):
        subject = await asyncio.to_thread(bound.prepare)
        if subject is not None:
            logger.info("Schema of %s %ss registered under subject %r", bound.topic,
                        bound.field, subject)
            subjects.append(subject)
    return subjects
