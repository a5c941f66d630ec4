"""Where table partitions keep their data: in memory, or in RocksDB."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from ..exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from ..types import Message
    from .table import Table

__all__ = ["MemoryStore", "PartitionStore", "StoreFactory", "latest_records", "store_for_url"]

Decoder = Callable[["bytes | None"], Any]

_KEY = attrgetter("key")
_VALUE = attrgetter("value")

#: Decodes many payloads at once (recovery), raising on any it cannot decode.
ListDecoder = Callable[[list[bytes]], list[Any]]

#: The ``json`` codec's parser (msgspec), called without the codec's layers.
_json_loads = msgspec.json.Decoder().decode


def _json_payloads(payloads: list[bytes], *, keys: bool) -> list[Any]:
    from ..models.registry import maybe_model

    items = list(map(_json_loads, payloads))  # each payload parsed on its own, in C
    kinds = set(map(type, items))
    if dict in kinds:
        items = [maybe_model(item) if type(item) is dict else item for item in items]
    if keys and list in kinds:
        from .table import _hashable

        items = [_hashable(item) if type(item) is list else item for item in items]
    return items


def _json_keys(payloads: list[bytes]) -> list[Any]:
    return _json_payloads(payloads, keys=True)


def _json_values(payloads: list[bytes]) -> list[Any]:
    return _json_payloads(payloads, keys=False)


def plain_json_decoders(schema: Any) -> tuple[ListDecoder | None, ListDecoder | None]:
    """List decoders of a changelog's keys and values, where they are plain JSON (no
    type, the built-in ``json`` codec): what a Table's decoders do one payload at a
    time, for many at once. None where a type or another codec decodes them."""
    from ..codecs import JSON_CODEC, get_codec

    def plain(typ: Any, serializer: Any) -> bool:
        return typ is None and get_codec(serializer or "json") is JSON_CODEC

    return (_json_keys if plain(schema.key_type, schema.key_serializer) else None,
            _json_values if plain(schema.value_type, schema.value_serializer) else None)


def latest_records(keys: list[bytes | None], values: list[bytes | None]
                   ) -> tuple[list[bytes | None], list[bytes | None]]:
    """The changelog records given as parallel ``keys`` and ``values`` with only the last
    record of each key kept, in the order of those last records (the order a replay
    of all of them ends in).

    Keys are compared as bytes: a changelog written by two encoders (Faust's JSON
    and fluvial's, say) may hold one key under two encodings, and the record that
    comes last must still win, which the order of the last records keeps true.
    """
    last = dict(zip(keys, range(len(keys)), strict=True))  # key -> index of its last record
    if len(last) == len(keys):
        return keys, values
    order = sorted(last.values())
    return [keys[i] for i in order], [values[i] for i in order]


class PartitionStore(Protocol):
    """The data of one (table, partition), and how far its changelog was applied."""

    changelog_offset: int | None

    def get(self, key: Any, default: Any = None) -> Any: ...

    def __contains__(self, key: object) -> bool: ...

    def __setitem__(self, key: Any, value: Any) -> None: ...

    def __delitem__(self, key: Any) -> None: ...

    def __len__(self) -> int: ...

    def keys(self) -> Any: ...

    def items(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def seal(self) -> None:
        """The changelog records of the writes so far were sent (see ``persist``)."""

    def persist(self, changelog_offset: int | None) -> None:
        """Make the sealed writes durable, with the changelog offset they reach."""

    def apply_changelog(self, messages: list[Message], decode_key: Decoder,
                        decode_value: Decoder) -> None:
        """Apply changelog records (recovery); the last value of a key wins."""

    def apply_records(self, keys: list[bytes | None], values: list[bytes | None],
                      last_offset: int, decode_key: Decoder, decode_value: Decoder,
                      decode_keys: ListDecoder | None = None,
                      decode_values: ListDecoder | None = None) -> None:
        """:meth:`apply_changelog` for records given as parallel lists of raw keys and
        values (``None``: a tombstone), the last at ``last_offset``. ``decode_keys``
        and ``decode_values``, if given, decode many at once as the others decode one."""

    def close(self) -> None: ...


class MemoryStore(dict[Any, Any]):
    """A table partition held in a dict; lost with the process, rebuilt from the changelog."""

    changelog_offset: int | None = None

    def seal(self) -> None:
        pass

    def persist(self, changelog_offset: int | None) -> None:
        if changelog_offset is not None:
            self.changelog_offset = changelog_offset

    def apply_changelog(self, messages: list[Message], decode_key: Decoder,
                        decode_value: Decoder) -> None:
        if messages:
            self.apply_records(list(map(_KEY, messages)), list(map(_VALUE, messages)),
                               messages[-1].offset, decode_key, decode_value)

    def apply_records(self, keys: list[bytes | None], values: list[bytes | None],
                      last_offset: int, decode_key: Decoder, decode_value: Decoder,
                      decode_keys: ListDecoder | None = None,
                      decode_values: ListDecoder | None = None) -> None:
        # Only the last record of a key is decoded: the others would be overwritten.
        keys, values = latest_records(keys, values)
        if (decode_keys is not None and decode_values is not None
                and self._apply_decoded(keys, values, decode_keys, decode_values)):
            self.changelog_offset = last_offset
            return
        pop = self.pop
        for raw_key, raw_value in zip(keys, values, strict=True):
            if raw_value is None:
                pop(decode_key(raw_key), None)
            else:
                self[decode_key(raw_key)] = decode_value(raw_value)
        self.changelog_offset = last_offset

    def _apply_decoded(self, keys: list[bytes | None], values: list[bytes | None],
                       decode_keys: ListDecoder, decode_values: ListDecoder) -> bool:
        """Apply with list decoders; False (nothing applied) if one of them fails, for
        the decoders of one payload at a time to name the record at fault."""
        if None in keys:
            return False
        deletes = None in values
        try:
            decoded_keys = decode_keys(keys)  # type: ignore[arg-type]
            decoded_values = decode_values(
                [v for v in values if v is not None] if deletes else values)  # type: ignore[arg-type]
        except Exception:
            return False
        if not deletes:
            self.update(zip(decoded_keys, decoded_values, strict=True))
            return True
        pop = self.pop
        new = iter(decoded_values)
        for key, raw_value in zip(decoded_keys, values, strict=True):
            if raw_value is None:
                pop(key, None)
            else:
                self[key] = next(new)
        return True

    def close(self) -> None:
        self.clear()


StoreFactory = Callable[["Table", int], PartitionStore]


def _memory(table: Table, partition: int) -> PartitionStore:
    return MemoryStore()


def _rocksdb(table: Table, partition: int) -> PartitionStore:
    from .rocksdb import RocksDBStore

    path = table.app.conf.table_path / f"{table.name}-{partition}.db"
    return RocksDBStore(
        path,
        encode_key=table.encode_key,
        encode_value=table.encode_value,
        decode_key=table.decode_key,
        decode_value=table.decode_value,
    )


def store_for_url(url: str) -> StoreFactory:
    """The store factory for ``memory://`` or ``rocksdb://``."""
    scheme = url.partition("://")[0] or url
    if scheme == "memory":
        return _memory
    if scheme == "rocksdb":
        return _rocksdb
    raise ImproperlyConfigured(f"Unknown table store {url!r}: use memory:// or rocksdb://")
