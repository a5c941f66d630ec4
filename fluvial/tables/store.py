"""Where table partitions keep their data. The in-memory store; RocksDB comes next."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["MemoryStore", "PartitionStore", "store_for_url"]


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

    def close(self) -> None: ...


class MemoryStore(dict[Any, Any]):
    """A table partition held in a dict; lost with the process, rebuilt from the changelog."""

    changelog_offset: int | None = None

    def close(self) -> None:
        self.clear()


def store_for_url(url: str) -> type[MemoryStore]:
    scheme = url.partition("://")[0] or url
    if scheme == "memory":
        return MemoryStore
    from ..exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"Unknown table store {url!r}: use memory://")
