"""Committed table changes (``table.on_committed_change``): reported once per checkpoint,
only after the checkpoint committed, never for an aborted transaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import fluvial as faust
from fluvial.tables.changes import TableChange
from fluvial.testing.driver import TestDriver
from fluvial.types import TP

from .conftest import eventually
from .test_exactly_once import feed, read_committed


def latest_app(name: str, source: str, broker_url: str, **settings: Any
               ) -> tuple[faust.App, Any, dict[tuple[str, int], tuple[int, int]]]:
    """An app keeping the latest value per key (a negative value deletes the key); it
    records the (partition, offset) of the event that wrote each (key, value)."""
    app = faust.App(name, broker=broker_url, topic_partitions=2, **settings)
    src = app.topic(source, key_type=str, value_type=int, partitions=2)
    latest = app.Table("latest", default=int)
    written: dict[tuple[str, int], tuple[int, int]] = {}

    @app.agent(src)
    async def keep(stream: faust.Stream[int]) -> None:
        async for event in stream.events():
            if event.value < 0:
                del latest[event.key]
            else:
                latest[event.key] = event.value
            written[(event.key, event.value)] = (event.message.partition, event.message.offset)

    return app, latest, written


async def test_changes_are_reported_after_their_checkpoint_committed(
    broker_url: str, unique: Callable[[str], str], caplog: pytest.LogCaptureFixture,
) -> None:
    source = unique("in")
    # Checkpoints only when the test asks for one.
    app, latest, written = latest_app(unique("changes"), source, broker_url,
                                      broker_commit_interval=3600)
    batches: list[list[tuple[str, Any, bool]]] = []
    violations: list[str] = []

    def listener(changes: Sequence[TableChange]) -> None:
        # What the worker has committed and delivered when it reports the changes.
        committed = dict(app.conductor.ctx.offsets.committed)
        for change in changes:
            value = -1 if change.deleted else change.value
            partition, offset = written[(change.key, value)]
            assert partition == change.partition
            if committed.get(TP(source, partition), 0) <= offset:
                violations.append(f"{change}: offset {offset} not committed ({committed})")
            store = latest.partition_data(partition)
            if store is None or store.changelog_offset is None:
                violations.append(f"{change}: changelog delivery not confirmed")
        batches.append(sorted((c.key, c.value, c.deleted) for c in changes))

    def broken(changes: Sequence[TableChange]) -> None:
        raise RuntimeError("a listener that fails")

    assert latest.on_committed_change(broken) is broken
    latest.on_committed_change(listener)
    async with app.running():
        await feed(broker_url, source, [("a", 1), ("a", 2), ("b", 5)])
        await eventually(lambda: len(written) == 3, message="three events")
        assert batches == []  # processed, not yet committed
        with caplog.at_level(logging.ERROR, logger="fluvial.tables.changes"):
            await app.conductor.checkpoints.checkpoint()
        # Both writes of "a" since the last checkpoint are one change: the latest.
        assert batches == [[("a", 2, False), ("b", 5, False)]]
        assert "committed-change listener" in caplog.text and "a listener that fails" in caplog.text

        await feed(broker_url, source, [("a", -1), ("b", 6)])
        await eventually(lambda: len(written) == 5, message="five events")
        await app.conductor.checkpoints.checkpoint()
        assert batches[1:] == [[("a", None, True), ("b", 6, False)]]

        await app.conductor.checkpoints.checkpoint()  # nothing changed: nothing reported
        assert len(batches) == 2

        latest.remove_committed_change_listener(listener)
        latest.remove_committed_change_listener(broken)
        await feed(broker_url, source, [("c", 7)])
        await eventually(lambda: len(written) == 6, message="six events")
        await app.conductor.checkpoints.checkpoint()
        assert len(batches) == 2
        assert latest._flushed_changes is None  # nobody listens: nothing collected
    assert violations == []


async def test_set_table_and_windowed_table_changes() -> None:
    """A set table reports a key's whole set (deleted once empty); a windowed table
    one change per (key, window), and the deletion of an expired window; a session
    table the deletion of sessions that merge and the merged one."""
    app = faust.App("changes-kinds", topic_partitions=1)
    ops = app.topic("ops", key_type=str, value_type=str, partitions=1)
    views_topic = app.topic("views", key_type=str, value_type=str, partitions=1)
    members = app.SetTable("members", partitions=1)
    views = app.Table("views", default=int, partitions=1).tumbling(10, expires=20)
    visits_topic = app.topic("visits", key_type=str, value_type=str, partitions=1)
    visits = app.Table("visits", default=int, partitions=1).session(5, grace=10,
                                                                    idle_timeout=None)
    reported: list[tuple[str, Any, Any, bool]] = []

    def listener(changes: Sequence[TableChange]) -> None:
        reported.extend((c.table.name, c.key, c.value, c.deleted) for c in changes)

    members.on_committed_change(listener)
    views.on_committed_change(listener)  # the windowed table's wrapper passes it on
    visits.on_committed_change(listener)

    @app.agent(ops)
    async def apply(stream: faust.Stream[str]) -> None:
        async for user, op in stream.items():
            verb, _, member = op.partition(":")
            if verb == "add":
                members[user].add(member)
            else:
                members[user].discard(member)

    @app.agent(views_topic)
    async def count(stream: faust.Stream[str]) -> None:
        async for page in stream:
            views[page] += 1

    @app.agent(visits_topic)
    async def sessions(stream: faust.Stream[str]) -> None:
        async for user in stream:
            visits[user] += 1

    t0 = 1_700_000_000.0
    async with TestDriver(app) as driver:
        await driver.send("ops", key="u", value="add:x")
        await driver.send("ops", key="u", value="add:y")
        await driver.settle()
        assert reported == [("members", "u", frozenset({"x", "y"}), False)]
        reported.clear()
        await driver.send("ops", key="u", value="discard:x")
        await driver.send("ops", key="u", value="discard:y")
        await driver.settle()
        assert reported == [("members", "u", None, True)]
        reported.clear()

        for at in (1, 2, 11):
            await driver.send("views", key="a", value="a", timestamp=t0 + at)
        await driver.settle()
        assert sorted(reported) == [("views", ("a", (t0, t0 + 9.9)), 2, False),
                                    ("views", ("a", (t0 + 10, t0 + 19.9)), 1, False)]
        reported.clear()
        await driver.send("views", key="a", value="a", timestamp=t0 + 35)  # window 0 expires
        await driver.settle()
        assert sorted(reported) == [("views", ("a", (t0, t0 + 9.9)), None, True),
                                    ("views", ("a", (t0 + 30, t0 + 39.9)), 1, False)]
        reported.clear()

        # Sessions (gap 5, grace 10): two apart, then an event that bridges them: they merge.
        for at in (100, 108):
            await driver.send("visits", key="s", value="s", timestamp=t0 + at)
        await driver.settle()
        assert sorted(reported) == [("visits", ("s", (t0 + 100, t0 + 100)), 1, False),
                                    ("visits", ("s", (t0 + 108, t0 + 108)), 1, False)]
        reported.clear()
        await driver.send("visits", key="s", value="s", timestamp=t0 + 104)
        await driver.settle()
        assert sorted(reported) == [("visits", ("s", (t0 + 100, t0 + 100)), None, True),
                                    ("visits", ("s", (t0 + 100, t0 + 108)), 3, False),
                                    ("visits", ("s", (t0 + 108, t0 + 108)), None, True)]


async def test_no_change_of_an_aborted_transaction_is_reported(
    broker_url: str, unique: Callable[[str], str], tmp_path: Path,
) -> None:
    """Exactly-once: two workers with one transactional identity; the second fences the
    first, whose transaction with table writes is aborted. Each value names the worker
    that wrote it, so a change of the aborted transaction cannot pass for a committed
    one: every change a worker reports is in the committed changelog."""
    name, source = unique("changes-eos"), unique("in")
    datadir = str(tmp_path / "shared")

    def worker(tag: str) -> tuple[faust.App, Any, list[tuple[str, Any]]]:
        app = faust.App(name, broker=broker_url, topic_partitions=2,
                        broker_commit_interval=0.2, processing_guarantee="exactly_once",
                        datadir=datadir)
        src = app.topic(source, key_type=str, value_type=int, partitions=2)
        counts = app.Table("counts", default=lambda: ["", 0])
        reported: list[tuple[str, Any]] = []

        @app.agent(src)
        async def count(stream: faust.Stream[int]) -> None:
            async for event in stream.events():
                counts[event.key] = [tag, counts[event.key][1] + 1]

        counts.on_committed_change(
            lambda changes: reported.extend((c.key, c.value) for c in changes))
        return app, counts, reported

    app1, counts1, reported1 = worker("a")
    app2, counts2, reported2 = worker("b")
    first = [(f"k{i % 5}", i) for i in range(200)]
    second = [(f"k{i % 5}", i) for i in range(200, 400)]

    def final() -> dict[str, int]:
        """The highest count reported per key."""
        highest: dict[str, int] = {}
        for key, (_, n) in reported1 + reported2:
            highest[key] = max(n, highest.get(key, 0))
        return highest

    async with app1.running():
        await feed(broker_url, source, first)
        await eventually(lambda: sum(v[1] for v in counts1.values()) == len(first),
                         message="first half")
        await app1.conductor.checkpoints.checkpoint()
        assert reported1  # the first half, committed by the first worker
        async with app2.running():
            assert app1.conductor.checkpoints.transactions is not None
            await feed(broker_url, source, second)
            await eventually(lambda: app1.conductor.checkpoints.transactions is not None
                             and app1.conductor.checkpoints.transactions.fenced >= 1,
                             message="first worker fenced")
            await eventually(lambda: final() == {f"k{i}": 80 for i in range(5)}, timeout=60,
                             message="the final counts reported")
            committed = {(json.loads(k), tuple(json.loads(v)))
                         for k, v in await read_committed(app2, counts2.changelog_topic_name, 2)}
    assert {(k, tuple(v)) for k, v in reported1} <= committed
    assert {(k, tuple(v)) for k, v in reported2} <= committed
