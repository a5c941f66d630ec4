"""A table partition in RocksDB (``store='rocksdb://'``), consistent with its changelog.

One database per (table, partition) under ``{datadir}/v{version}/tables``.
Writes stay in memory until the checkpoint that sent them to the changelog
has been flushed; then they go to RocksDB in one write batch together with
the changelog offset they correspond to (in the ``meta`` column family). So
the database never holds a write the changelog lacks, and a restart replays
only the changelog after that offset.

Changelog records applied by recovery (and by standby replicas) are written
without RocksDB's write-ahead log, and their offset is not written with them:
it is written (through the log) only after a flush has made those records
durable in table files — every ``SYNC_EVERY`` records, before any checkpoint
writes through the log, and on close. A crash loses at most the records
applied since that flush, and the stored offset is then older than what the
table files may hold: the restart replays the changelog from that offset,
and replaying records a store already holds leaves it as it was (the last
record of each key wins either way).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import TableError
from .store import ListDecoder

if TYPE_CHECKING:
    from ..types import Message

__all__ = ["RocksDBStore"]

logger = logging.getLogger(__name__)

_DELETED = object()
_MISSING = object()
_OFFSET_KEY = b"changelog_offset"
_META = "meta"

#: Changelog records applied without the write-ahead log between two flushes that
#: make them durable with their offset (what a crash may make a restart replay).
SYNC_EVERY = 1_000_000

Encoder = Callable[[Any], "bytes | None"]
Decoder = Callable[["bytes | None"], Any]


def _options() -> Any:
    from rocksdict import Options

    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.create_missing_column_families(True)
    return options


def _without_log() -> Any:
    from rocksdict import WriteOptions

    options = WriteOptions()
    options.disable_wal = True  # type: ignore[method-assign,assignment]  # a property
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
        #: Changelog records applied without the write-ahead log and not yet flushed
        #: (the offset stored on disk is still the one before them).
        self._unsynced = 0
        self._no_log = _without_log()
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
        if self._unsynced:
            # What recovery wrote without the log must not be lost under an offset
            # written through it.
            self._sync()
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
        """Recovery: write changelog records as they are (bytes); see :meth:`apply_records`."""
        if messages:
            self.apply_records([m.key for m in messages], [m.value for m in messages],
                               messages[-1].offset, decode_key, decode_value)

    def apply_records(self, keys: list[bytes | None], values: list[bytes | None],
                      last_offset: int, decode_key: Decoder, decode_value: Decoder,
                      decode_keys: ListDecoder | None = None,
                      decode_values: ListDecoder | None = None) -> None:
        """Recovery: write changelog records as they are (bytes), without the log.

        Only the last record of each key is written. A key the changelog sets is
        no longer shadowed by a write of this worker that was never persisted
        (the changelog's value is the newer one). ``last_offset`` becomes durable
        at the next :meth:`_sync` (see the module docstring).
        """
        from rocksdict import WriteBatch

        applied = len(keys)
        # Each key's last value (keys are distinct in RocksDB: their order is free).
        latest: dict[Any, bytes | None] = dict(zip(keys, values, strict=True))
        latest.pop(None, None)  # no record without a key is stored
        if self._pending or self._flushing:
            for raw_key in latest:
                key = decode_key(raw_key)
                self._pending.pop(key, None)
                if self._flushing:
                    self._flushing.pop(key, None)
        batch = WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        # In key order: RocksDB inserts sorted keys into its memtable faster.
        for raw_key, raw_value in sorted(latest.items()):
            if raw_value is None:
                delete(raw_key)
            else:
                put(raw_key, raw_value)
        self._db.write(batch, self._no_log)
        self.changelog_offset = last_offset
        self._unsynced += applied
        if self._unsynced >= SYNC_EVERY:
            self._sync()

    def _sync(self) -> None:
        """Flush what was written without the log to table files, then write its offset."""
        from rocksdict import WriteBatch

        self._db.flush(True)
        self._unsynced = 0
        if self.changelog_offset is not None:
            batch = WriteBatch(raw_mode=True)
            batch.put(_OFFSET_KEY, str(self.changelog_offset).encode(), self._meta)
            self._db.write(batch)

    def close(self) -> None:
        """Release the database (not-persisted writes are lost: the changelog has them)."""
        db = getattr(self, "_db", None)
        if db is None:
            return
        if self._unsynced:
            self._sync()
        del self._meta
        self._db = None  # type: ignore[assignment]
        db.close()
