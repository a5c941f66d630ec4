"""Where table partitions keep their data: in memory, or in RocksDB."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ..exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from ..types import Message
    from .table import Table

__all__ = ["MemoryStore", "PartitionStore", "StoreFactory", "store_for_url"]

Decoder = Callable[["bytes | None"], Any]


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
        for message in messages:
            key = decode_key(message.key)
            if message.value is None:
                self.pop(key, None)
            else:
                self[key] = decode_value(message.value)
        if messages:
            self.changelog_offset = messages[-1].offset

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
