"""Kafka's key partitioner: the Java client's murmur2, bit for bit.

A keyed message must land in the same partition whether the Java client,
librdkafka (``partitioner=murmur2_random``, which fluvial's Kafka producer uses)
or fluvial's in-process broker places it; co-partitioned tables rely on that.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from ..exceptions import ImproperlyConfigured

__all__ = ["murmur2", "partition_for_key"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: a signed 32-bit MurmurHash2 (seed 0x9747b28c) of ``data``."""
    length = len(data)
    h = _SEED ^ length
    whole = length & ~3
    # One C-level unpack of all little-endian 4-byte words, and as few masks as
    # keep the arithmetic 32-bit: this runs once per keyed message.
    for k in struct.unpack_from(f"<{whole >> 2}I", data):
        k = (k * _M) & _MASK
        h = ((h * _M) ^ (((k ^ (k >> 24)) * _M) & _MASK)) & _MASK
    rest = length & 3
    if rest:
        if rest == 3:
            h ^= data[whole + 2] << 16
        if rest >= 2:
            h ^= data[whole + 1] << 8
        h = ((h ^ data[whole]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


@lru_cache(maxsize=65536)
def _cached_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a non-null ``key``.

    ``(murmur2(key) & 0x7fffffff) % partitions``, as the Java client's
    ``BuiltInPartitioner`` and librdkafka's ``murmur2``/``murmur2_random``.
    Keys recur (that is what keys are for), so recent answers are cached.
    """
    if partitions < 1:
        raise ImproperlyConfigured(f"partitions must be at least 1, not {partitions}")
    return _cached_partition(bytes(key), partitions)
