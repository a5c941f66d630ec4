"""Faust's ``faust.serializers.codecs``: the codecs of :mod:`fluvial.codecs` (the same
objects and registry: a codec registered through either is known to both)."""

from __future__ import annotations

from fluvial.codecs import (
    Codec,
    CodecArg,
    binary,
    codecs,
    dumps,
    get_codec,
    json,
    loads,
    pickle,
    raw,
    register,
    yaml,
)

__all__ = ["Codec", "CodecArg", "binary", "codecs", "dumps", "get_codec", "json", "loads",
           "pickle", "raw", "register", "yaml"]
