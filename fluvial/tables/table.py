"""``Table``: a dict sharded by partition, written from agents, restored from its changelog.

Writes go to the partition of the event being processed (tables are
co-partitioned with the streams that update them). Each write marks the key
dirty; at every checkpoint the latest value of each dirty key goes to the
changelog topic ``{app_id}-{table}-changelog`` (key and value JSON-encoded
unless the types say otherwise, as Faust does), so a changelog written by a
Faust app restores here and vice versa.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from ..events import _current_event, current_message
from ..exceptions import ImproperlyConfigured, PartitionNotOwned, TableError
from ..serializers import Schema
from .changes import ChangeListener, TableChange, notify
from .store import PartitionStore, plain_json_decoders, store_for_url

if TYPE_CHECKING:
    from ..app import App
    from ..channels import Topic
    from ..types import Message, RecordMetadata
    from .recovery import RecordRun
    from .sessions import SessionWrapper
    from .windowed import WindowState, WindowWrapper
    from .windows import Seconds, Window

__all__ = ["GlobalTable", "Table"]

logger = logging.getLogger(__name__)

_MISSING = object()


def _hashable(data: Any) -> Any:
    """A decoded JSON key as the key written: lists were tuples (a list is no dict key)."""
    if isinstance(data, list):
        return tuple(_hashable(item) for item in data)
    return data


def _hashable_keys(decode: Callable[[bytes | None], Any]) -> Callable[[bytes | None], Any]:
    def decode_key(data: bytes | None) -> Any:
        key = decode(data)
        return _hashable(key) if type(key) is list else key

    return decode_key


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _serializer_for(typ: Any) -> str:
    """Faust's choice of changelog serializer for a key or value type."""
    if typ is bytes:
        return "raw"
    options = getattr(typ, "_options", None)
    serializer = getattr(options, "serializer", None)
    return serializer or "json"


class Table(MutableMapping[Any, Any]):
    """A sharded, durable dictionary (``app.Table('name', default=int)``)."""

    is_global = False

    def __init__(
        self,
        app: App,
        *,
        name: str,
        default: Callable[[], Any] | None = None,
        key_type: Any = None,
        value_type: Any = None,
        partitions: int | None = None,
        changelog_topic: Topic[Any] | None = None,
        help: str | None = None,
        on_recover: Callable[[], Any] | None = None,
        on_changelog_event: Callable[[Any], Any] | None = None,
        use_partitioner: bool = False,
        key_serializer: str | None = None,
        value_serializer: str | None = None,
        extra_topic_configs: dict[str, Any] | None = None,
        on_window_close: Callable[[Any, Any], Any] | None = None,
        on_late_event: Callable[[Any, Any], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.app = app
        self.name = name
        self.default = default
        self.key_type = key_type
        self.value_type = value_type
        self.partitions = partitions or app.conf.topic_partitions
        self.help = help or ""
        self.use_partitioner = use_partitioner
        self.key_serializer = key_serializer or _serializer_for(key_type)
        self.value_serializer = value_serializer or _serializer_for(value_type)
        self._on_recover: list[Callable[[], Any]] = [on_recover] if on_recover else []
        self.on_changelog_event = on_changelog_event
        #: Set by :meth:`using_window` (``tumbling()``, ``hopping()``, ``sliding()``).
        self.window: Window | None = None
        self._on_window_close = on_window_close
        self._on_late_event = on_late_event
        self._windowing: WindowState | None = None
        # The store is chosen when a partition is first opened: a worker run may
        # still change the setting after the table was declared (see run_worker).
        store_for_url(app.conf.store)  # fail fast on an unknown store URL
        self._parts: dict[int, PartitionStore] = {}
        #: Partitions held as a standby replica (see :mod:`.standby`): kept current
        #: from the changelog, invisible to reads until they become active.
        self._standby_parts: dict[int, PartitionStore] = {}
        self._dirty: dict[int, set[Any]] = {}
        #: Changelog records sent so far (metrics).
        self.changelog_records = 0
        self._sensors = app.sensors
        #: Writes of events whose partition was revoked meanwhile (dropped).
        self.writes_dropped = 0
        self._dropped_logged = 0.0
        #: Per partition, the delivery of the last changelog record sent at a checkpoint.
        self._last_sent: dict[int, asyncio.Future[RecordMetadata]] = {}
        #: See :mod:`.changes`: the listeners, and the changes the last flush sent
        #: (collected only when someone listens), reported once they are committed.
        self._change_listeners: tuple[ChangeListener, ...] = ()
        self._flushed_changes: list[TableChange] | None = None
        self.changelog_topic = changelog_topic or app.topic(
            f"{app.conf.id}-{name}-changelog",
            schema=Schema(
                key_type=key_type,
                value_type=value_type,
                key_serializer=self.key_serializer,
                value_serializer=self.value_serializer,
            ),
            partitions=self.partitions,
            compacting=True,
            deleting=False,
            internal=True,
            config=extra_topic_configs,
        )
        changelog = self.changelog_topic
        self.encode_key = changelog.schema.key_encoder(default_serializer="json",
                                                       channel=changelog)
        self.encode_value = changelog.schema.value_encoder(default_serializer="json",
                                                           channel=changelog)
        self.decode_key = changelog.schema.key_decoder(default_serializer="json",
                                                       channel=changelog)
        if key_type is None:
            self.decode_key = _hashable_keys(self.decode_key)
        self.decode_value = changelog.schema.value_decoder(default_serializer="json",
                                                           channel=changelog)
        #: Key types whose keys were seen to come back from the changelog as written.
        self._key_types: set[type] = set()
        #: Whether a subclass overrides on_key_get/on_key_set/on_key_del (called only then).
        cls = type(self)
        self._key_hooks = (cls.on_key_get is not Table.on_key_get
                           or cls.on_key_set is not Table.on_key_set
                           or cls.on_key_del is not Table.on_key_del)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {len(self)} keys>"

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    @property
    def changelog_topic_name(self) -> str:
        return self.changelog_topic.get_topic_name()

    def on_recover(self, fun: Callable[[], Any]) -> Callable[[], Any]:
        """Decorator: call ``fun`` after the table was restored from its changelog."""
        self._on_recover.append(fun)
        return fun

    # -- committed changes (see :mod:`.changes`) ---------------------------------

    def on_committed_change(self, listener: ChangeListener) -> ChangeListener:
        """Call ``listener(changes)`` after each checkpoint that committed changes of
        this table (a list of :class:`~fluvial.tables.changes.TableChange`); usable as a
        decorator. The listener runs inside the checkpoint: it must not block."""
        if not callable(listener):
            raise TypeError(f"Table {self.name!r}: on_committed_change takes a callable "
                            f"(changes) -> None, not {listener!r}")
        self._change_listeners = (*self._change_listeners, listener)
        return listener

    def remove_committed_change_listener(self, listener: ChangeListener) -> None:
        """Stop calling ``listener`` (added with :meth:`on_committed_change`); no-op if absent."""
        self._change_listeners = tuple(x for x in self._change_listeners if x is not listener)

    def report_committed(self) -> None:
        """The checkpoint that last flushed the changelog committed: tell the listeners."""
        changes, self._flushed_changes = self._flushed_changes, None
        if changes and self._change_listeners:
            notify(self._change_listeners, changes)

    # -- partitions ------------------------------------------------------------

    def _partition_for_write(self, key: Any) -> int:
        if self.use_partitioner:
            from ..transport.partitioner import partition_for_key

            encoded = self.encode_key(key)
            if encoded is None:
                raise TableError(f"Table {self.name}: a None key cannot be partitioned")
            return partition_for_key(encoded, self.partitions)
        message = current_message()
        if message is None:
            raise TableError(
                f"Cannot write to table {self.name!r} outside of a stream: the partition "
                "of a key comes from the event being processed. Write from an agent, or "
                "create the table with use_partitioner=True."
            )
        partition = message.partition
        if partition >= self.partitions:
            raise TableError(
                f"Table {self.name!r} has {self.partitions} partitions but the event comes "
                f"from {message.topic}[{partition}]: the stream and the table must be "
                "co-partitioned (group_by the stream, or give the table partitions=)."
            )
        return partition

    def _store(self, partition: int) -> PartitionStore:
        store = self._parts.get(partition)
        if store is None:
            store = self._standby_parts.get(partition)  # changelog applied to a standby
            if store is None:
                new_store = store_for_url(self.app.conf.store)
                store = self._parts[partition] = new_store(self, partition)
        return store

    def _writable(self, partition: int) -> PartitionStore | None:
        """The store a write to ``partition`` goes to, or None: the partition is another
        worker's now and the write is dropped (see :meth:`_not_owned`)."""
        store = self._parts.get(partition)
        if store is not None:
            return store
        if partition in self._standby_parts or not self.app.tables.may_write(partition):
            self._not_owned(partition)
            return None
        return self._store(partition)

    def _not_owned(self, partition: int) -> None:
        """A write to a partition this worker does not own.

        From an event (an agent finishing it after a rebalance took its partition
        away), the write is dropped with a warning: the event's offset is not
        committed here, and the partition's new owner processes it. Raising would
        end the agent's loop for nothing. Elsewhere (a ``use_partitioner`` write
        from a view or a timer) it raises :class:`PartitionNotOwned`.
        """
        message = (f"Table {self.name!r}: partition {partition} belongs to another worker "
                   "(revoked from this one by a rebalance, or never assigned to it)")
        if current_message() is None:
            raise PartitionNotOwned(f"{message}; send the write to its owner (app.router "
                                    "tells which worker owns a key)")
        self.writes_dropped += 1
        now = time.monotonic()
        if now - self._dropped_logged >= 10.0:
            self._dropped_logged = now
            logger.warning("%s: the write of an event of that partition is dropped (%d so far); "
                           "its new owner processes the event", message, self.writes_dropped)

    def open_partition(self, partition: int) -> PartitionStore:
        """Open (or create) the store of ``partition``; it now belongs to this worker.

        A standby store of the partition becomes the active one, with its data
        and changelog offset (recovery replays only what it lacks).
        """
        standby = self._standby_parts.pop(partition, None)
        if standby is not None:
            self._parts[partition] = standby
            return standby
        return self._store(partition)

    # -- standby replicas (see :mod:`fluvial.tables.standby`) -------------------------

    def open_standby(self, partition: int) -> PartitionStore:
        """Open (or create) ``partition`` as a standby replica (not while it is active)."""
        if partition in self._parts:
            raise TableError(f"Table {self.name!r}: partition {partition} is active here, "
                             "it cannot be a standby")
        store = self._standby_parts.get(partition)
        if store is None:
            new_store = store_for_url(self.app.conf.store)
            store = self._standby_parts[partition] = new_store(self, partition)
        return store

    def standby_data(self, partition: int) -> PartitionStore | None:
        """The standby store of ``partition``, if this worker holds one."""
        return self._standby_parts.get(partition)

    @property
    def standby_partitions(self) -> set[int]:
        return set(self._standby_parts)

    def demote_partition(self, partition: int) -> None:
        """An active partition was revoked: keep its store as a standby (maybe released later).

        Only a store the changelog fully covers is kept: one written since the
        last checkpoint sent its changelog holds writes nobody else will see
        (the new owner processes those events again), so it is closed instead.
        """
        store = self._parts.get(partition)
        clean = not self._unflushed(partition)
        self.drop_partition(partition, close=not clean)
        if store is not None and clean:
            self._standby_parts[partition] = store

    def _unflushed(self, partition: int) -> bool:
        """Whether ``partition`` was written since the last changelog flush."""
        return bool(self._dirty.get(partition))

    def release_standby(self, partition: int) -> None:
        """Stop holding ``partition`` as a standby: its store is closed (data may stay on disk)."""
        store = self._standby_parts.pop(partition, None)
        if store is not None:
            store.close()

    def partitions_held(self) -> list[int]:
        """The partition numbers whose stores are open here."""
        return list(self._parts)

    def partition_data(self, partition: int) -> PartitionStore | None:
        return self._parts.get(partition)

    @property
    def data(self) -> Mapping[Any, Any]:
        """The keys this worker holds, as stored: a read-only view over its partitions
        (no ``default``, no key hooks; write through the table)."""
        return TableData(self._parts)

    def reset_state(self) -> None:
        """Forget this worker's copy of the table (the changelog keeps everything).

        Every partition store, active and standby, is closed and a RocksDB store
        deleted from disk, so the next assignment restores the table from its
        changelog. Only while the worker is not running.
        """
        if self.app.started:
            raise ImproperlyConfigured(
                f"Table {self.name!r}: reset_state() while the worker runs would lose "
                "writes not yet in the changelog; stop the worker first")
        for partition in list(self._parts):
            self.drop_partition(partition)
        for partition in list(self._standby_parts):
            self.release_standby(partition)
        if self.app.conf.store.startswith("rocksdb"):
            import shutil

            for path in self.app.conf.table_path.glob(f"{self.name}-*.db"):
                shutil.rmtree(path, ignore_errors=True)

    # -- key hooks (Faust's): override in a subclass ------------------------------

    def on_key_get(self, key: Any) -> None:
        """Called when a key is read (overridden: then on every read)."""

    def on_key_set(self, key: Any, value: Any) -> None:
        """Called when a key is written."""

    def on_key_del(self, key: Any) -> None:
        """Called when a key is deleted."""

    # -- mapping ----------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        if self._sensors.tables:
            self._sensors.on_table_get(self, key)
        if self._key_hooks:
            self.on_key_get(key)
        current = _current_event.get()
        if current is not None and current.message is not None:
            store = self._parts.get(current.message.partition)
            if store is not None:
                value = store.get(key, _MISSING)
                if value is not _MISSING:
                    return value
        for store in self._parts.values():
            value = store.get(key, _MISSING)
            if value is not _MISSING:
                return value
        return self.__missing__(key)

    def __missing__(self, key: Any) -> Any:
        if self.default is not None:
            return self.default()
        raise KeyError(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        if self._sensors.tables:
            self._sensors.on_table_set(self, key, value)
        # The usual write (from an agent, to a partition held here, a kind of key
        # already checked) inline; everything else as _partition_for_write/_set_in.
        current = None if self.use_partitioner else _current_event.get()
        store = None
        message = None if current is None else current.message
        if message is not None and type(key) in self._key_types:
            partition = message.partition
            if partition < self.partitions:
                store = self._parts.get(partition)
        if store is not None:
            store[key] = value
            dirty = self._dirty.get(partition)
            if dirty is None:
                dirty = self._dirty[partition] = set()
            dirty.add(key)
        else:
            self._set_in(self._partition_for_write(key), key, value)
        if self._key_hooks:
            self.on_key_set(key, value)

    def __delitem__(self, key: Any) -> None:
        if self._sensors.tables:
            self._sensors.on_table_del(self, key)
        self._del_in(self._partition_for_write(key), key)
        if self._key_hooks:
            self.on_key_del(key)

    def _set_in(self, partition: int, key: Any, value: Any) -> None:
        """Write ``key`` in ``partition`` (marked dirty for the next checkpoint)."""
        if type(key) not in self._key_types:
            self._check_key(key)
        store = self._parts.get(partition)
        if store is None:
            store = self._writable(partition)
            if store is None:
                return
        store[key] = value
        dirty = self._dirty.get(partition)
        if dirty is None:
            dirty = self._dirty[partition] = set()
        dirty.add(key)

    def _unreadable(self, messages: list[Message], exc: Exception) -> str:
        """Which changelog record could not be restored, and why."""
        for message in messages:
            try:
                hash(self.decode_key(message.key))  # a key must be hashable
                if message.value is not None:
                    self.decode_value(message.value)
            except Exception as error:
                return (f"the record at offset {message.offset} (key {_short(message.key)}): "
                        f"{type(error).__name__}: {error}")
        return f"{type(exc).__name__}: {exc}"

    def _check_key(self, key: Any) -> None:
        """Refuse, at its first write, a kind of key the changelog would not give back
        (a bytes key under JSON, a datetime that comes back a string): the table
        would work until its first restore, then not start at all."""
        try:
            restored = self.decode_key(self.encode_key(key))
        except Exception as exc:
            restored = exc
        if not isinstance(restored, BaseException) and restored == key and (
                hash(restored) == hash(key)):
            self._key_types.add(type(key))
            return
        back = (f"could not be read back ({restored})" if isinstance(restored, BaseException)
                else f"would come back as {restored!r} ({type(restored).__name__})")
        raise TableError(
            f"Table {self.name}: the key {_short(key)} ({type(key).__name__}) {back} from "
            f"the changelog (key serializer {self.key_serializer!r}). Declare the table's "
            "key_type (key_type=bytes for bytes keys), or use keys that come back as written "
            "(str, int, float, bool, tuples of them, Records)")

    def _del_in(self, partition: int, key: Any) -> None:
        """Delete ``key`` from ``partition`` (a tombstone at the next checkpoint)."""
        store = self._writable(partition)
        if store is None:
            return
        del store[key]
        self._dirty.setdefault(partition, set()).add(key)

    def __contains__(self, key: object) -> bool:
        return any(key in store for store in self._parts.values())

    def __iter__(self) -> Iterator[Any]:
        for store in list(self._parts.values()):
            yield from list(store)

    def __len__(self) -> int:
        return sum(len(store) for store in self._parts.values())

    def as_ansitable(self, title: str | None = None, **kwargs: Any) -> str:
        """The table as text (key, value rows), like Faust's ``as_ansitable``."""
        from rich.console import Console
        from rich.table import Table as RichTable

        view = RichTable(title=title or self.name)
        view.add_column("key")
        view.add_column("value")
        for key, value in sorted(self.items(), key=lambda kv: repr(kv[0])):
            view.add_row(repr(key), repr(value))
        console = Console(width=100, record=True, force_terminal=False)
        with console.capture() as capture:
            console.print(view)
        return capture.get()

    # -- windows --------------------------------------------------------------------

    def using_window(self, window: Window, *, key_index: bool = False,
                     grace: Seconds = 0.0, idle_timeout: Seconds | None = 60.0
                     ) -> WindowWrapper:
        """Make this a windowed table (keys ``(key, (start, end))``); see :mod:`.windowed`."""
        from .windowed import use_window

        return use_window(self, window, grace=grace, idle_timeout=idle_timeout)

    def tumbling(self, size: Seconds, expires: Seconds | None = None, key_index: bool = False,
                 *, grace: Seconds = 0.0, idle_timeout: Seconds | None = 60.0
                 ) -> WindowWrapper:
        """Count per tumbling window: ``app.Table('views', default=int).tumbling(60)``."""
        from .windows import TumblingWindow

        return self.using_window(TumblingWindow(size, expires), grace=grace,
                                 idle_timeout=idle_timeout)

    def hopping(self, size: Seconds, step: Seconds, expires: Seconds | None = None,
                key_index: bool = False, *, grace: Seconds = 0.0,
                idle_timeout: Seconds | None = 60.0) -> WindowWrapper:
        """Windows of ``size`` seconds starting every ``step`` seconds."""
        from .windows import HoppingWindow

        return self.using_window(HoppingWindow(size, step, expires), grace=grace,
                                 idle_timeout=idle_timeout)

    def sliding(self, before: Seconds, after: Seconds, expires: Seconds | None = None,
                key_index: bool = False, *, grace: Seconds = 0.0,
                idle_timeout: Seconds | None = 60.0) -> WindowWrapper:
        """One window per event timestamp ``t``: ``(t - before, t + after)``."""
        from .windows import SlidingWindow

        return self.using_window(SlidingWindow(before, after, expires), grace=grace,
                                 idle_timeout=idle_timeout)

    def session(self, gap: Seconds, expires: Seconds | None = None, *,
                merge: Callable[[Any, Any], Any] | None = None, grace: Seconds = 0.0,
                idle_timeout: Seconds | None = 60.0) -> SessionWrapper:
        """Per key, one window per burst of events less than ``gap`` seconds apart.

        Sessions that an event bridges merge with ``merge`` (default ``+``);
        see :mod:`.sessions`.
        """
        import operator

        from .sessions import use_session_window
        from .windows import SessionWindow

        return use_session_window(self, SessionWindow(gap, expires),
                                  merge=merge or operator.add, grace=grace,
                                  idle_timeout=idle_timeout)

    # -- changelog ----------------------------------------------------------------

    def flush_changelog(self) -> int:
        """Send the latest value of every dirty key; returns how many were sent."""
        # Changes of an earlier flush not reported by now were never committed.
        self._flushed_changes = None
        if not self._dirty:
            # Still sealed: writes made from now until ``persist`` (while the
            # producer flushes or the transaction commits) are not in the changelog.
            self._seal_stores()
            return 0
        changes: list[TableChange] | None = [] if self._change_listeners else None
        producer = self.app.producer
        send = producer.send_soon
        topic = self.changelog_topic_name
        encode_key = self.encode_key
        encode_value = self.encode_value
        sent = 0
        dirty, self._dirty = self._dirty, {}
        for partition, keys in dirty.items():
            store = self._parts.get(partition)
            last = len(keys) - 1
            for i, key in enumerate(keys):
                value = store.get(key, _MISSING) if store is not None else _MISSING
                payload = None if value is _MISSING else encode_value(value)
                if changes is not None:
                    changes.append(TableChange(self, key, None, True, partition)
                                   if payload is None
                                   else TableChange(self, key, value, False, partition))
                if i == last:
                    # Its offset is the changelog position the store persists with.
                    self._last_sent[partition] = producer.send(
                        topic, encode_key(key), payload, partition=partition)
                else:
                    send(topic, encode_key(key), payload, partition=partition)
                sent += 1
        self._flushed_changes = changes
        self._seal_stores()
        self.changelog_records += sent
        return sent

    def _seal_stores(self) -> None:
        """What the changelog was just sent is what the coming ``persist`` may write."""
        for store in self._parts.values():
            store.seal()

    def persist(self) -> None:
        """After the producer was flushed: make each partition durable up to its changelog."""
        sent, self._last_sent = self._last_sent, {}
        for partition, store in self._parts.items():
            fut = sent.get(partition)
            offset = fut.result().offset if fut is not None and fut.done() else None
            store.persist(offset)

    def apply_changelog(self, partition: int, messages: list[Message]) -> None:
        """Apply changelog records (recovery): the last value of a key wins."""
        try:
            self._store(partition).apply_changelog(messages, self.decode_key,
                                                   self.decode_value)
        except Exception as exc:
            raise TableError(
                f"Table {self.name}: cannot restore partition {partition} from "
                f"{self.changelog_topic_name}: {self._unreadable(messages, exc)}") from exc
        if self._windowing is not None:
            self._windowing.forget(partition)
        callback = self.on_changelog_event
        if callback is not None:
            for message in messages:
                callback(message)

    def apply_changelog_run(self, partition: int, run: RecordRun) -> None:
        """:meth:`apply_changelog` for a run of records as parallel lists (recovery),
        without a Message per record unless a subclass or ``on_changelog_event`` needs one."""
        if (self.on_changelog_event is not None
                or type(self).apply_changelog is not Table.apply_changelog):
            self.apply_changelog(partition, run.messages())
            return
        try:
            self._store(partition).apply_records(
                run.keys, run.values, run.last_offset, self.decode_key, self.decode_value,
                *plain_json_decoders(self.changelog_topic.schema))
        except Exception as exc:
            raise TableError(
                f"Table {self.name}: cannot restore partition {partition} from "
                f"{self.changelog_topic_name}: {self._unreadable(run.messages(), exc)}"
            ) from exc
        if self._windowing is not None:
            self._windowing.forget(partition)

    def drop_partition(self, partition: int, *, close: bool = True) -> None:
        store = self._parts.pop(partition, None)
        self._dirty.pop(partition, None)
        if self._windowing is not None:
            self._windowing.forget(partition)
        self._last_sent.pop(partition, None)
        if self._flushed_changes:
            # Not this worker's to report any more (its checkpoint may not commit).
            self._flushed_changes = [c for c in self._flushed_changes
                                     if c.partition != partition]
        if store is not None and close:
            store.close()

    async def call_recover_callbacks(self) -> None:
        import inspect

        for callback in self._on_recover:
            result = callback()
            if inspect.isawaitable(result):
                await result


class TableData(Mapping[Any, Any]):
    """``table.data``: the stored keys of the partitions a worker holds."""

    def __init__(self, parts: dict[int, PartitionStore]) -> None:
        self._parts = parts

    def __getitem__(self, key: Any) -> Any:
        for store in self._parts.values():
            value = store.get(key, _MISSING)
            if value is not _MISSING:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        for store in list(self._parts.values()):
            yield from list(store)

    def __len__(self) -> int:
        return sum(len(store) for store in self._parts.values())


class GlobalTable(Table):
    """A table every worker holds whole (see :mod:`fluvial.tables.globals`).

    Each worker writes the partitions it owns and tails the changelogs of the
    others, so reads anywhere see every key.
    """

    is_global = True
