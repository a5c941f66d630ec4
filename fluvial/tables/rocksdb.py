"""A table partition in RocksDB (``store='rocksdb://'``), consistent with its changelog.

One database per (table, partition) under ``{datadir}/v{version}/tables``.
Writes stay in memory until the checkpoint that sent them to the changelog
has been flushed; then they go to RocksDB in one write batch together with
the changelog offset they correspond to (in the ``meta`` column family). So
the database never holds a write the changelog lacks, and a restart replays
only the changelog after that offset.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import TableError

if TYPE_CHECKING:
    from ..types import Message

__all__ = ["RocksDBStore"]

logger = logging.getLogger(__name__)

_DELETED = object()
_MISSING = object()
_OFFSET_KEY = b"changelog_offset"
_META = "meta"

Encoder = Callable[[Any], "bytes | None"]
Decoder = Callable[["bytes | None"], Any]


def _options() -> Any:
    from rocksdict import Options

    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.create_missing_column_families(True)
    return options


class RocksDBStore:
    """A dict-like view of one table partition: RocksDB plus not-yet-persisted writes."""

    def __init__(self, path: Path, *, encode_key: Encoder, encode_value: Encoder,
                 decode_key: Decoder, decode_value: Decoder) -> None:
        try:
            from rocksdict import Options, Rdict
        except ImportError as exc:  # pragma: no cover - rocksdict is a dependency
            raise TableError("store='rocksdb://' needs rocksdict, a dependency of fluvial that "
                             "is missing here: pip install 'rocksdict>=0.3.20'") from exc
        self.path = path
        self._encode_key = encode_key
        self._encode_value = encode_value
        self._decode_key = decode_key
        self._decode_value = decode_value
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = Rdict(str(path), _options(),
                             column_families={_META: Options(raw_mode=True)})
        except Exception as exc:
            text = str(exc)
            if "lock" in text.lower():
                raise TableError(
                    f"The table store {path} is locked by another process: another worker "
                    "of this app uses the same data directory. Give each worker its own "
                    "(--datadir or FLUVIAL_DATADIR)."
                ) from exc
            raise TableError(
                f"Cannot open the table store {path}: {text}. If it is damaged, delete it "
                "(fluvial reset): it is rebuilt from the changelog."
            ) from exc
        self._meta = self._db.get_column_family_handle(_META)
        meta = self._db.get_column_family(_META)
        raw = meta.get(_OFFSET_KEY)
        del meta  # a column-family view keeps the database open
        self.changelog_offset: int | None = int(raw) if raw is not None else None
        #: Writes since the last checkpoint sent the changelog.
        self._pending: dict[Any, Any] = {}
        #: Writes whose changelog records are being flushed (see ``seal``).
        self._flushing: dict[Any, Any] | None = None

    # -- mapping ------------------------------------------------------------------

    def get(self, key: Any, default: Any = None) -> Any:
        value = self._pending.get(key, _MISSING)
        if value is _MISSING and self._flushing is not None:
            value = self._flushing.get(key, _MISSING)
        if value is not _MISSING:
            return default if value is _DELETED else value
        raw = self._db.get(self._key(key))
        return default if raw is None else self._decode_value(raw)

    def _key(self, key: Any) -> bytes:
        encoded = self._encode_key(key)
        if encoded is None:
            raise TableError(f"A table key cannot be None (store {self.path})")
        return encoded

    def __contains__(self, key: object) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def __setitem__(self, key: Any, value: Any) -> None:
        self._pending[key] = value

    def __delitem__(self, key: Any) -> None:
        if key not in self:
            raise KeyError(key)
        self._pending[key] = _DELETED

    def pop(self, key: Any, default: Any = None) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            return default
        self._pending[key] = _DELETED
        return value

    def keys(self) -> list[Any]:
        overlay = {**(self._flushing or {}), **self._pending}
        decode = self._decode_key
        raws = self._db.keys()
        stored = [k for k in (decode(raw) for raw in raws) if k not in overlay]  # type: ignore[arg-type]
        return stored + [k for k, v in overlay.items() if v is not _DELETED]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def items(self) -> list[tuple[Any, Any]]:
        return [(key, self.get(key)) for key in self.keys()]

    # -- persistence ------------------------------------------------------------------

    def seal(self) -> None:
        """The changelog records of the writes so far were just sent: only these may be
        persisted at the end of this checkpoint, not writes made while it flushes."""
        if self._flushing is None:
            self._flushing, self._pending = self._pending, {}
        else:
            self._flushing.update(self._pending)
            self._pending = {}

    def persist(self, changelog_offset: int | None) -> None:
        """Write the sealed changes and the changelog offset they reach, atomically.

        Without a ``seal`` (a table kind that does not seal), all pending changes.
        """
        from rocksdict import WriteBatch

        changes = self._flushing if self._flushing is not None else self._pending
        if not changes and changelog_offset is None:
            return
        batch = WriteBatch(raw_mode=True)
        for key, value in changes.items():
            encoded = self._key(key)
            if value is _DELETED:
                batch.delete(encoded)
            else:
                payload = self._encode_value(value)
                if payload is None:
                    batch.delete(encoded)
                else:
                    batch.put(encoded, payload)
        if changelog_offset is not None:
            batch.put(_OFFSET_KEY, str(changelog_offset).encode(), self._meta)
        self._db.write(batch)
        if self._flushing is not None:
            self._flushing = None
        else:
            self._pending.clear()
        if changelog_offset is not None:
            self.changelog_offset = changelog_offset

    def apply_changelog(self, messages: list[Message], decode_key: Decoder,
                        decode_value: Decoder) -> None:
        """Recovery: write changelog records as they are (bytes), with their offset.

        A key the changelog sets is no longer shadowed by a write of this worker
        that was never persisted (the changelog's value is the newer one).
        """
        from rocksdict import WriteBatch

        if self._pending or self._flushing:
            for message in messages:
                if message.key is not None:
                    key = decode_key(message.key)
                    self._pending.pop(key, None)
                    if self._flushing:
                        self._flushing.pop(key, None)
        batch = WriteBatch(raw_mode=True)
        for message in messages:
            if message.key is None:
                continue
            if message.value is None:
                batch.delete(message.key)
            else:
                batch.put(message.key, message.value)
        if messages:
            offset = messages[-1].offset
            batch.put(_OFFSET_KEY, str(offset).encode(), self._meta)
        self._db.write(batch)
        if messages:
            self.changelog_offset = messages[-1].offset

    def close(self) -> None:
        """Release the database (not-persisted writes are lost: the changelog has them)."""
        db = getattr(self, "_db", None)
        if db is None:
            return
        del self._meta
        self._db = None  # type: ignore[assignment]
        db.close()
