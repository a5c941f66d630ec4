"""``SetTable`` / ``SetGlobalTable``: a table whose every value is a set, changelogged as deltas.

``table[key]`` is a :class:`ChangeloggedSet`, a live set-like view: ``add``,
``discard``, ``remove``, ``update``/``|=``, ``difference_update``/``-=``,
``intersection_update``/``&=``, ``symmetric_difference_update``/``^=``,
``clear``, ``in``, ``len`` and iteration. Writes go to the partition of the
event being processed, like :class:`~fluvial.tables.table.Table` writes.

Changelog format (Faust's ``faust/tables/sets.py``, so a Faust-written
changelog restores here and ours restores in Faust)::

    key   = JSON [operation, key]          e.g. b'[1,"alice"]'
    value = JSON, per operation:
            1 (ADD)     the member          e.g. b'"x"'
            2 (DISCARD) the member
            15 (UPDATE) [added, removed]    e.g. b'[["x","y"],["z"]]'

Keys and values are always JSON (Faust hardcodes ``json`` for set tables),
whatever ``key_serializer``/``value_serializer`` say. Records are applied in
changelog order; UPDATE adds before it removes. Faust sends one record per
operation as it happens; here the changes of a key since the last checkpoint
are sent at the checkpoint as one net delta (ADD or DISCARD for a single
member, else UPDATE), which applied to the previous state gives the same set.
The changelog topic is not compacted (compaction by ``[op, key]`` would drop
deltas) and keeps its records forever (``retention.ms=-1``).

A set that becomes empty leaves the table (``key in table`` is false);
reading a missing key gives an empty set, as in Faust.

With ``start_manager=True`` the table also runs Faust's set manager: an
agent on the topic ``{table}-setmanager`` that applies operations sent with
``await table.manager.add(key, member)`` (also ``discard``, ``clear``,
``difference_update``, ``intersection_update``, ``symmetric_difference_update``)
from anywhere, e.g. a web view. Its records are Faust's
``SetManagerOperation`` (``{"action": "ADD", "members": [...]}``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, MutableSet
from typing import TYPE_CHECKING, Any

import msgspec

from ..codecs import json_dumps, json_loads
from ..events import current_message
from ..exceptions import TableError
from ..models import Record
from ..models.convert import is_model_class
from ..models.registry import maybe_model
from ..serializers import Schema
from .changes import TableChange
from .table import GlobalTable, Table

if TYPE_CHECKING:
    from ..app import App
    from ..channels import Topic
    from ..streams import Stream
    from ..types import Message
    from .windowed import WindowWrapper
    from .windows import Seconds, Window

__all__ = [
    "OPERATION_ADD",
    "OPERATION_DISCARD",
    "OPERATION_UPDATE",
    "ChangeloggedSet",
    "SetGlobalTable",
    "SetManagerOperation",
    "SetTable",
    "SetTableManager",
]

OPERATION_ADD = 0x1
OPERATION_DISCARD = 0x2
OPERATION_UPDATE = 0xF

logger = logging.getLogger(__name__)

_EMPTY: frozenset[Any] = frozenset()


def _hashable(data: Any) -> Any:
    """Decoded JSON as a set member or key: models rebuilt, lists made tuples (hashable)."""
    if isinstance(data, list):
        return tuple(_hashable(item) for item in data)
    return maybe_model(data)


def _converter(typ: Any) -> Callable[[Any], Any]:
    """Decoded JSON -> a key or member of ``typ`` (``None``: as decoded, made hashable)."""
    if typ is None:
        return _hashable
    if is_model_class(typ):
        return lambda data: data if isinstance(data, typ) else typ.from_data(data)
    return lambda data: msgspec.convert(data, typ, strict=False)


class ChangeloggedSet(MutableSet[Any]):
    """The set at one key of a :class:`SetTable` (a live view: reads see every write)."""

    __slots__ = ("key", "table")

    def __init__(self, table: SetTable, key: Any) -> None:
        self.table = table
        self.key = key

    def __repr__(self) -> str:
        return f"<ChangeloggedSet {self.table.name}[{self.key!r}]: {set(self)!r}>"

    @classmethod
    def _from_iterable(cls, it: Iterable[Any]) -> set[Any]:
        # ``view | other`` and friends give a plain set, not a view.
        return set(it)

    __hash__ = None  # type: ignore[assignment]  # mutable, like set

    # -- reads ------------------------------------------------------------------------

    def __contains__(self, member: object) -> bool:
        return member in self.table._members(self.key)

    def __iter__(self) -> Iterator[Any]:
        # A snapshot: the loop body may change the set.
        return iter(tuple(self.table._members(self.key)))

    def __len__(self) -> int:
        return len(self.table._members(self.key))

    # -- writes ------------------------------------------------------------------------

    def add(self, member: Any) -> None:
        self.table._change(self.key, added=(member,))

    def discard(self, member: Any) -> None:
        self.table._change(self.key, removed=(member,))

    def clear(self) -> None:
        self.table._change(self.key, removed=tuple(self.table._members(self.key)))

    def update(self, *others: Iterable[Any]) -> None:
        self.table._change(self.key, added=[m for other in others for m in other])

    def difference_update(self, *others: Iterable[Any]) -> None:
        self.table._change(self.key, removed=[m for other in others for m in other])

    def intersection_update(self, *others: Iterable[Any]) -> None:
        keep = set(self.table._members(self.key))
        for other in others:
            keep.intersection_update(other)
        self.table._change(self.key, removed=[m for m in self if m not in keep])

    def symmetric_difference_update(self, other: Iterable[Any]) -> None:
        current = self.table._members(self.key)
        flip = set(other)
        self.table._change(self.key, added=[m for m in flip if m not in current],
                           removed=[m for m in flip if m in current])


class SetTable(Table):
    """A table of sets (``app.SetTable('active_orders')``); see the module docstring."""

    def __init__(
        self,
        app: App,
        *,
        name: str,
        start_manager: bool = False,
        manager_topic_name: str | None = None,
        manager_topic_suffix: str = "-setmanager",
        changelog_topic: Topic[Any] | None = None,
        partitions: int | None = None,
        extra_topic_configs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("default") is not None:
            raise TableError(f"SetTable {name!r}: a set table has no default= (a missing "
                             "key reads as an empty set)")
        kwargs.pop("default", None)
        if changelog_topic is None:
            changelog_topic = app.topic(
                f"{app.conf.id}-{name}-changelog",
                # Keys are [operation, key] and values members or [added, removed]:
                # typed decoding happens here, per member, not in the topic.
                schema=Schema(key_serializer="json", value_serializer="json"),
                partitions=partitions or app.conf.topic_partitions,
                compacting=False,
                deleting=True,
                retention=None,
                internal=True,
                config={"retention.ms": "-1", **(extra_topic_configs or {})},
            )
        super().__init__(app, name=name, changelog_topic=changelog_topic,
                         partitions=partitions, **kwargs)
        self._to_key = _converter(self.key_type)
        self._to_member = _converter(self.value_type)
        # What the stores (RocksDB) and use_partitioner see: the key as JSON, the
        # whole set as a JSON list.
        self.encode_key = self._encode_json
        self.encode_value = self._encode_json
        self.decode_key = self._decode_key
        self.decode_value = self._decode_members
        #: Per partition, per key: the members added and removed since the last checkpoint.
        self._deltas: dict[int, dict[Any, tuple[set[Any], set[Any]]]] = {}
        self.start_manager = start_manager
        self.manager_topic_name = manager_topic_name or name + manager_topic_suffix
        self.manager = SetTableManager(self)

    @staticmethod
    def _encode_json(value: Any) -> bytes | None:
        return None if value is None else json_dumps(value)

    def _decode_key(self, data: bytes | None) -> Any:
        return None if data is None else self._to_key(json_loads(data))

    def _decode_members(self, data: bytes | None) -> Any:
        if data is None:
            return None
        to_member = self._to_member
        return {to_member(m) for m in json_loads(data)}

    # -- reads ------------------------------------------------------------------------

    def _members(self, key: Any) -> set[Any] | frozenset[Any]:
        """The set at ``key`` (the event's partition first, like Table reads); never a copy."""
        message = current_message()
        if message is not None:
            store = self._parts.get(message.partition)
            if store is not None:
                members = store.get(key)
                if members is not None:
                    return members  # type: ignore[no-any-return]
        for store in self._parts.values():
            members = store.get(key)
            if members is not None:
                return members  # type: ignore[no-any-return]
        return _EMPTY

    def __getitem__(self, key: Any) -> ChangeloggedSet:
        return ChangeloggedSet(self, key)

    def __missing__(self, key: Any) -> ChangeloggedSet:
        return ChangeloggedSet(self, key)

    # -- writes ------------------------------------------------------------------------

    def __setitem__(self, key: Any, value: Any) -> None:
        """Replace the set at ``key`` (``table[k] |= ...`` assigns the same view back)."""
        if isinstance(value, ChangeloggedSet) and value.table is self and value.key == key:
            return
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise TableError(f"SetTable {self.name!r}: assign a set of members, "
                             f"not {type(value).__name__}")
        new = set(value)
        current = self._members(key)
        self._change(key, added=[m for m in new if m not in current],
                     removed=[m for m in current if m not in new])

    def __delitem__(self, key: Any) -> None:
        self._change(key, removed=tuple(self._members(key)))

    def _change(self, key: Any, *, added: Iterable[Any] = (),
                removed: Iterable[Any] = ()) -> None:
        """Add then remove members at ``key`` in the event's partition; remember the delta."""
        partition = self._partition_for_write(key)
        store = self._writable(partition)
        if store is None:
            return  # the partition is another worker's now
        current: set[Any] | None = store.get(key)
        members = current if current is not None else set()
        really_added = [m for m in added if m not in members]
        members.update(really_added)
        really_removed = [m for m in removed if m in members]
        members.difference_update(really_removed)
        if not really_added and not really_removed:
            return
        if members:
            store[key] = members
        elif current is not None:
            del store[key]
        deltas = self._deltas.get(partition)
        if deltas is None:
            deltas = self._deltas[partition] = {}
        delta = deltas.get(key)
        if delta is None:
            delta = deltas[key] = (set(), set())
        plus, minus = delta
        plus.difference_update(really_removed)
        minus.update(really_removed)
        minus.difference_update(really_added)
        plus.update(really_added)

    # -- changelog ------------------------------------------------------------------------

    def flush_changelog(self) -> int:
        """Send one delta record per changed key; returns how many were sent."""
        self._flushed_changes = None  # see Table.flush_changelog
        if not self._deltas:
            self._seal_stores()  # see Table.flush_changelog
            return 0
        changes: list[TableChange] | None = [] if self._change_listeners else None
        producer = self.app.producer
        topic = self.changelog_topic_name
        sent = 0
        pending, self._deltas = self._deltas, {}
        for partition, deltas in pending.items():
            last: Any = None
            store = self._parts.get(partition) if changes is not None else None
            for key, (plus, minus) in deltas.items():
                if not plus and not minus:
                    continue  # added and removed again since the last checkpoint
                if changes is not None:
                    # A copy: the store's set changes in place after this checkpoint.
                    members = store.get(key) if store is not None else None
                    changes.append(TableChange(self, key, frozenset(members), False, partition)
                                   if members else
                                   TableChange(self, key, None, True, partition))
                if len(plus) == 1 and not minus:
                    op, value = OPERATION_ADD, next(iter(plus))
                elif len(minus) == 1 and not plus:
                    op, value = OPERATION_DISCARD, next(iter(minus))
                else:
                    op, value = OPERATION_UPDATE, [list(plus), list(minus)]
                last = producer.send(topic, json_dumps([op, key]), json_dumps(value),
                                     partition=partition)
                sent += 1
            if last is not None:
                # Its offset is the changelog position the store persists with.
                self._last_sent[partition] = last
        self._flushed_changes = changes
        self._seal_stores()
        return sent

    def apply_changelog(self, partition: int, messages: list[Message]) -> None:
        """Apply delta records in order (recovery), then persist with their offset."""
        store = self._store(partition)
        to_member = self._to_member
        for message in messages:
            op, key = self._decode_changelog_key(message)
            if message.value is None:
                continue  # Faust's set tables write no tombstones; nothing to apply
            value = json_loads(message.value)
            current: set[Any] | None = store.get(key)
            members = current if current is not None else set()
            if op == OPERATION_ADD:
                members.add(to_member(value))
            elif op == OPERATION_DISCARD:
                members.discard(to_member(value))
            elif op == OPERATION_UPDATE:
                plus, minus = value
                members.update(to_member(m) for m in plus)
                members.difference_update(to_member(m) for m in minus)
            else:
                raise TableError(
                    f"SetTable {self.name!r}: unknown operation {op!r} in "
                    f"{message.topic}[{message.partition}]@{message.offset} (key {key!r})")
            if members:
                store[key] = members
            elif current is not None:
                del store[key]
        if messages:
            store.persist(messages[-1].offset)
        callback = self.on_changelog_event
        if callback is not None:
            for message in messages:
                callback(message)

    def _decode_changelog_key(self, message: Message) -> tuple[int, Any]:
        try:
            op, raw_key = json_loads(message.key) if message.key is not None else (None, None)
        except (ValueError, TypeError, msgspec.DecodeError) as exc:
            raise TableError(
                f"SetTable {self.name!r}: changelog record {message.topic}[{message.partition}]"
                f"@{message.offset} has key {message.key!r}, not JSON [operation, key]: is "
                "this the changelog of a set table?") from exc
        if op is None:
            raise TableError(f"SetTable {self.name!r}: changelog record "
                             f"{message.topic}[{message.partition}]@{message.offset} has no key")
        return op, self._to_key(raw_key)

    def _unflushed(self, partition: int) -> bool:
        return bool(self._deltas.get(partition))

    def drop_partition(self, partition: int, *, close: bool = True) -> None:
        self._deltas.pop(partition, None)
        super().drop_partition(partition, close=close)

    # -- unsupported -------------------------------------------------------------------

    def using_window(self, window: Window, *, key_index: bool = False,
                     grace: Seconds = 0.0, idle_timeout: Seconds | None = 60.0
                     ) -> WindowWrapper:
        raise TableError(f"SetTable {self.name!r}: windowed set tables are not supported yet")


class SetGlobalTable(SetTable, GlobalTable):
    """A :class:`SetTable` every worker holds whole (one worker: every partition is local)."""


class SetManagerOperation(Record, namespace="@SetManagerOperation"):
    """A set operation sent to a set table's manager topic (Faust's wire format)."""

    action: str
    members: list[Any]


class SetTableManager:
    """``table.manager``: change sets from outside a stream, through the manager topic.

    Enabled with ``SetTable(..., start_manager=True)``; an agent applies the
    operations in the partition of their key, so they land with the key's owner.
    """

    ACTIONS = ("ADD", "DISCARD", "CLEAR", "INTERSECTION", "SYMDIFF")

    def __init__(self, table: SetTable) -> None:
        self.table = table
        self.enabled = table.start_manager
        self._topic: Topic[Any] | None = None
        if self.enabled:
            table.app.agent(self.topic, name=f"{table.name}.setmanager")(self._modify_set)

    @property
    def topic(self) -> Topic[Any]:
        if self._topic is None:
            self._topic = self.table.app.topic(
                self.table.manager_topic_name, key_type=str,
                value_type=SetManagerOperation, partitions=self.table.partitions)
        return self._topic

    async def add(self, key: Any, member: Any) -> None:
        await self._send("ADD", key, [member])

    async def discard(self, key: Any, member: Any) -> None:
        await self._send("DISCARD", key, [member])

    async def clear(self, key: Any) -> None:
        await self._send("CLEAR", key, [])

    async def difference_update(self, key: Any, members: Iterable[Any]) -> None:
        await self._send("DISCARD", key, members)

    async def intersection_update(self, key: Any, members: Iterable[Any]) -> None:
        await self._send("INTERSECTION", key, members)

    async def symmetric_difference_update(self, key: Any, members: Iterable[Any]) -> None:
        await self._send("SYMDIFF", key, members)

    async def _send(self, action: str, key: Any, members: Iterable[Any]) -> None:
        if not self.enabled:
            raise TableError(f"SetTable {self.table.name!r} was created with "
                             "start_manager=False: pass start_manager=True to use "
                             "table.manager")
        await self.topic.send(key=key, value=SetManagerOperation(action=action,
                                                                  members=list(members)))

    async def _modify_set(self, stream: Stream[Any]) -> None:
        table = self.table
        to_member = table._to_member
        async for key, operation in stream.items():
            members = [to_member(m) for m in operation.members]
            target = table[key]
            action = operation.action
            if action == "ADD":
                target.update(members)
            elif action == "DISCARD":
                target.difference_update(members)
            elif action == "CLEAR":
                target.clear()
            elif action == "INTERSECTION":
                target.intersection_update(members)
            elif action == "SYMDIFF":
                target.symmetric_difference_update(members)
            else:
                # A bad record from outside must not stop the worker (Faust logs it too).
                logger.error("SetTable %r: unknown set manager action %r (key %r); expected "
                             "one of %s", table.name, action, key, ", ".join(self.ACTIONS))
