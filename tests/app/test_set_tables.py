"""SetTable / SetGlobalTable: set operations from agents, delta changelogs in Faust's format,
restore after restart (memory and RocksDB stores), the set manager, misuse errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fluvial as faust
from fluvial.codecs import json_loads
from fluvial.exceptions import TableError
from fluvial.types import TP, Message

from .conftest import eventually


class Op(faust.Record, serializer="json"):
    user: str
    action: str  # add, discard, update, difference, intersection, clear
    items: list[str]


def build(name: str, topic_name: str, broker_url: str, store: str = "memory://",
          datadir: Path | None = None, *, global_: bool = False
          ) -> tuple[faust.App, Any, Any, list[Op]]:
    settings: dict[str, Any] = {"store": store}
    if datadir is not None:
        settings["datadir"] = str(datadir)
    app = faust.App(name, broker=broker_url, topic_partitions=3,
                    broker_commit_interval=0.2, **settings)
    topic = app.topic(topic_name, key_type=str, value_type=Op, partitions=3)
    sets = app.SetGlobalTable("items") if global_ else app.SetTable("items")
    seen: list[Op] = []

    @app.agent(topic)
    async def apply(ops: faust.Stream[Op]) -> None:
        async for op in ops:
            members = sets[op.user]
            if op.action == "add":
                for item in op.items:
                    members.add(item)
            elif op.action == "discard":
                for item in op.items:
                    members.discard(item)
            elif op.action == "update":
                members |= set(op.items)
            elif op.action == "difference":
                members -= set(op.items)
            elif op.action == "intersection":
                members.intersection_update(op.items)
            elif op.action == "clear":
                members.clear()
            seen.append(op)

    return app, topic, sets, seen


OPS = [
    Op(user="alice", action="add", items=["a", "b", "c"]),
    Op(user="bob", action="update", items=["x", "y"]),
    Op(user="alice", action="discard", items=["b", "zz"]),
    Op(user="carol", action="add", items=["q"]),
    Op(user="bob", action="difference", items=["x"]),
    Op(user="alice", action="update", items=["d"]),
    Op(user="carol", action="clear", items=[]),
    Op(user="dave", action="update", items=["1", "2", "3"]),
    Op(user="dave", action="intersection", items=["2", "3", "4"]),
]
EXPECTED = {"alice": {"a", "c", "d"}, "bob": {"y"}, "dave": {"2", "3"}}


def snapshot(sets: Any) -> dict[str, set[str]]:
    return {key: set(sets[key]) for key in sets}


async def send_ops(topic: Any, ops: list[Op]) -> None:
    for op in ops:
        await topic.send(key=op.user, value=op)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
async def test_set_operations_from_an_agent_restore_after_restart(
    broker_url: str, unique: Callable[[str], str], tmp_path: Path, store: str
) -> None:
    name, topic_name = unique("sets"), unique("ops")
    app, topic, sets, seen = build(name, topic_name, broker_url, store, tmp_path)
    async with app.running():
        await send_ops(topic, OPS)
        await eventually(lambda: len(seen) == len(OPS), message="all operations applied")
        assert snapshot(sets) == EXPECTED
        assert "carol" not in sets  # an emptied set leaves the table
        assert set(sets["carol"]) == set() and len(sets["nobody"]) == 0
        assert "a" in sets["alice"] and "b" not in sets["alice"]
        assert sets["alice"] == {"a", "c", "d"}
        assert sets["alice"] | {"z"} == {"a", "c", "d", "z"}  # a plain set
    app2, topic2, sets2, seen2 = build(name, topic_name, broker_url, store, tmp_path)
    async with app2.running():
        await eventually(lambda: snapshot(sets2) == EXPECTED,
                         message="sets restored from the changelog")
        if store == "rocksdb://":
            # Everything was persisted with its changelog offset at the clean stop.
            assert app2.tables.last_restored == 0
        else:
            assert app2.tables.last_restored > 0
        await send_ops(topic2, [Op(user="alice", action="discard", items=["a"])])
        await eventually(lambda: set(sets2["alice"]) == {"c", "d"},
                         message="a new operation applies on top of the restored set")
        assert seen2 == [Op(user="alice", action="discard", items=["a"])]


async def read_changelog(app: faust.App, table: Any, start: int = 0) -> list[Message]:
    consumer = app.transport.create_consumer(None)
    await consumer.start()
    try:
        tps = {TP(table.changelog_topic_name, p) for p in range(3)}
        ends = await consumer.end_offsets(tps)
        consumer.assign(dict.fromkeys(tps, start))
        wanted = sum(max(0, end - start) for end in ends.values())
        messages: list[Message] = []
        for _ in range(50):  # one call may return part of what is there
            messages += await consumer.getmany(100, 0.2)
            if len(messages) >= wanted:
                break
        return messages
    finally:
        await consumer.stop()


async def test_changelog_records_are_faust_set_deltas(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    app, topic, sets, seen = build(unique("setlog"), unique("ops"), broker_url)
    app.override(broker_commit_interval=3600.0)  # only the test's checkpoints
    batches: list[list[tuple[Any, Any]]] = []
    async with app.running():
        steps = [
            Op(user="alice", action="add", items=["x"]),
            Op(user="alice", action="discard", items=["x"]),
            Op(user="alice", action="update", items=["y", "z"]),
        ]
        for i, op in enumerate(steps, 1):
            await send_ops(topic, [op])
            await eventually(lambda i=i: len(seen) == i, message=f"operation {i}")  # type: ignore[misc]
            await app.conductor.checkpoints.checkpoint()
            changelog = [m for m in await read_changelog(app, sets) if m.offset >= i - 1]
            batches.append([(json_loads(m.key), json_loads(m.value)) for m in changelog])
        changelog_name = sets.changelog_topic_name
    assert changelog_name == f"{app.conf.id}-items-changelog"
    add, discard, update = batches
    assert add == [([1, "alice"], "x")]
    assert discard == [([2, "alice"], "x")]
    [(key, (added, removed))] = update
    assert key == [15, "alice"] and sorted(added) == ["y", "z"] and removed == []


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
async def test_a_faust_written_changelog_restores(
    broker_url: str, unique: Callable[[str], str], tmp_path: Path, store: str
) -> None:
    """Records as Faust writes them (one per operation, stdlib JSON spacing) restore."""
    name, topic_name = unique("faustlog"), unique("ops")
    app, _, sets, _ = build(name, topic_name, broker_url, store, tmp_path)
    records = [
        (0, b'[1, "alice"]', b'"x"'),
        (0, b'[1, "alice"]', b'"y"'),
        (0, b'[2, "alice"]', b'"x"'),
        (1, b'[15, "bob"]', b'[["p", "q", "r"], []]'),
        (1, b'[15, "bob"]', b'[["s"], ["p"]]'),
        (2, b'[1, "carol"]', b'"gone"'),
        (2, b'[2, "carol"]', b'"gone"'),
    ]
    await app.declare_topics([sets.changelog_topic])
    producer = app.transport.create_producer()
    await producer.start()
    try:
        for partition, key, value in records:
            producer.send_soon(sets.changelog_topic_name, key, value, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()
    async with app.running():
        # carol's partition ends empty, so the snapshot alone cannot tell whether it was
        # restored yet: wait for every record to be applied too.
        await eventually(lambda: app.tables.last_restored == len(records),
                         message="every Faust changelog record applied")
        assert snapshot(sets) == {"alice": {"y"}, "bob": {"q", "r", "s"}}
        assert sets.partition_data(1) is not None and "bob" in sets.partition_data(1)
    if store == "rocksdb://":
        # The restored sets were persisted with their changelog offsets: nothing to replay.
        app2, _, sets2, _ = build(name, topic_name, broker_url, store, tmp_path)
        async with app2.running():
            await eventually(lambda: snapshot(sets2) == {"alice": {"y"}, "bob": {"q", "r", "s"}},
                             message="sets reopened from RocksDB")
            assert app2.tables.last_restored == 0


async def test_set_global_table_from_an_agent(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    name, topic_name = unique("gsets"), unique("ops")
    app, topic, sets, seen = build(name, topic_name, broker_url, global_=True)
    assert isinstance(sets, faust.SetGlobalTable) and sets.is_global
    async with app.running():
        await send_ops(topic, OPS)
        await eventually(lambda: len(seen) == len(OPS), message="all operations applied")
        assert snapshot(sets) == EXPECTED
    app2, _, sets2, _ = build(name, topic_name, broker_url, global_=True)
    async with app2.running():
        await eventually(lambda: snapshot(sets2) == EXPECTED, message="restored")


async def test_set_manager_applies_operations_sent_from_outside_a_stream(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    app = faust.App(unique("setmgr"), broker=broker_url, topic_partitions=3,
                    broker_commit_interval=0.2)
    # Faust names the manager topic after the table only ("{table}-setmanager").
    manager_topic = unique("active-setmanager")
    sets = app.SetTable("active", start_manager=True, manager_topic_name=manager_topic)
    async with app.running():
        await sets.manager.add("orders", "o1")
        await sets.manager.add("orders", "o2")
        await sets.manager.difference_update("orders", ["o1"])
        await sets.manager.symmetric_difference_update("orders", ["o2", "o3"])
        await sets.manager.add("other", "z")
        await sets.manager.clear("other")
        await sets.manager.add("other", "last")
        await eventually(lambda: set(sets["orders"]) == {"o3"}
                         and set(sets["other"]) == {"last"},
                         message="manager operations applied")
        assert sets.manager.topic.get_topic_name() == manager_topic
    assert faust.App("x").SetTable("t", start_manager=True).manager_topic_name == "t-setmanager"


async def test_misuse_is_a_clear_error() -> None:
    app = faust.App("sets-misuse", broker="memory://", topic_partitions=3)
    sets = app.SetTable("s")
    with pytest.raises(TableError, match="outside of a stream"):
        sets["k"].add("x")
    with pytest.raises(TableError, match="start_manager=False"):
        await sets.manager.add("k", "x")
    with pytest.raises(TableError, match="no default="):
        app.SetTable("d", default=set)
    with pytest.raises(TableError, match="not supported"):
        sets.tumbling(10)
    anywhere = app.SetTable("anywhere", use_partitioner=True)
    with pytest.raises(TableError, match="not str"):
        anywhere["k"] = "abc"
    anywhere["k"] = {"a", "b"}
    anywhere["k"].remove("a")
    with pytest.raises(KeyError):
        anywhere["k"].remove("a")
    assert set(anywhere["k"]) == {"b"} and list(anywhere) == ["k"]
    del anywhere["k"]
    assert "k" not in anywhere and len(anywhere) == 0
    bad = Message(sets.changelog_topic_name, 0, 0, b'[7,"k"]', b'"x"', 0.0)
    with pytest.raises(TableError, match="unknown operation 7"):
        sets.apply_changelog(0, [bad])
    plain = Message(sets.changelog_topic_name, 0, 1, b'"k"', b'"x"', 0.0)
    with pytest.raises(TableError, match="is this the changelog of a set table"):
        sets.apply_changelog(0, [plain])
