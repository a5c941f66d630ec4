"""Session windows: extend, split, merge, close once, late events, idle closing, restart."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fluvial as faust
from fluvial.exceptions import ImproperlyConfigured
from fluvial.testing.driver import TestDriver

from .conftest import eventually
from .test_windows import read_changelog

T0 = 1_700_000_000.0  # the TestDriver's clock starts here


def s(start: float, end: float) -> tuple[float, float]:
    """A session range, in seconds after T0."""
    return (T0 + start, T0 + end)


def test_session_window_math() -> None:
    window = faust.SessionWindow(30, expires=60)
    assert (window.gap, window.expires) == (30.0, 60.0)
    assert window.joins((100.0, 110.0), 71.0) and not window.joins((100.0, 110.0), 70.0)
    assert window.joins((100.0, 110.0), 139.9) and not window.joins((100.0, 110.0), 140.0)
    assert window.closes_at((100.0, 110.0)) == 140.0
    assert window.ranges(5.0) == [(5.0, 5.0)]
    with pytest.raises(ImproperlyConfigured, match="> 0"):
        faust.SessionWindow(0)


def clicks_app(name: str, **options: Any) -> tuple[faust.App, Any, Any, list[Any]]:
    app = faust.App(name, topic_partitions=1)
    topic = app.topic("clicks", key_type=str, value_type=str)
    table = app.Table("clicks", default=int, on_window_close=options.pop("on_close", None),
                      on_late_event=options.pop("on_late", None))
    sessions = table.session(options.pop("gap", 30), **options)
    seen: list[Any] = []

    @app.agent(topic)
    async def count(events: faust.Stream[str]) -> None:
        async for event in events.events():
            user = event.value
            sessions[user] += 1
            ws = sessions[user]
            seen.append((user, ws.current(), ws.value(), ws.delta(100), user in sessions))

    return app, table, sessions, seen


async def click(driver: TestDriver, user: str, at: float) -> None:
    await driver.send("clicks", key=user, value=user, timestamp=T0 + at)


async def test_sessions_extend_split_and_merge() -> None:
    closed: list[tuple[Any, Any]] = []
    app, table, sessions, seen = clicks_app(
        "sess-merge", grace=20, idle_timeout=None,
        on_close=lambda key, value: closed.append((key, value)))
    async with TestDriver(app) as driver:
        await click(driver, "a", 0)
        await click(driver, "a", 10)   # 10s after: extends the session
        await click(driver, "b", 5)
        await click(driver, "a", 50)   # 40s after the last: a new session
        await driver.settle()
        assert dict(table.items()) == {
            ("a", s(0, 10)): 2, ("b", s(5, 5)): 1, ("a", s(50, 50)): 1}
        await click(driver, "a", 30)   # within 30s of both: bridges them
        await driver.settle()
        assert dict(table.items()) == {("a", s(0, 50)): 4, ("b", s(5, 5)): 1}
        # current()/value() read the session of the event just counted; delta(100)
        # a time before any session; ``in`` the session of the event.
        assert seen == [
            ("a", 1, 1, 0, True), ("a", 2, 2, 0, True), ("b", 1, 1, 0, True),
            ("a", 1, 1, 0, True), ("a", 4, 4, 0, True),
        ]
        # now(): the session still active at the wall clock, which stands at T0.
        assert sessions["a"].now() == 4 and sessions["b"].now() == 0  # b's starts at 5
        await driver.advance(20)
        assert sessions["a"].now() == 4 and sessions["b"].now() == 1
        assert sorted(sessions.items().now()) == [("a", 4), ("b", 1)]
        await driver.advance(20)  # T0 + 40: b's session (5, 5) went quiet at 35
        assert sessions["b"].now() == 0 and sessions["a"].now() == 4
        assert closed == []
        # Stream time 200 passes 50 + gap + grace: each final session closes once.
        await click(driver, "c", 200)
        await driver.settle()
        assert sorted(closed) == [(("a", s(0, 50)), 4), (("b", s(5, 5)), 1)]
        await click(driver, "c", 300)
        await driver.settle()
        assert sorted(closed) == [
            (("a", s(0, 50)), 4), (("b", s(5, 5)), 1), (("c", s(200, 200)), 1)]
        assert sessions.state.closed_windows == 3  # merged-away sessions never closed
        # Every session that grew or merged away left a tombstone in the changelog.
        changelog = await read_changelog(app, table.changelog_topic_name, 1)
        tombstones = {tuple(json.loads(k)[1]) for k, v in changelog if v is None}
        assert tombstones == {s(0, 0), s(0, 10), s(50, 50)}
        latest = {tuple(json.loads(k)[1]): v for k, v in changelog}
        assert latest[s(0, 50)] == b"4"


async def test_merge_option_for_other_values() -> None:
    app = faust.App("sess-sets", topic_partitions=1)
    topic = app.topic("pages", key_type=str, value_type=str)
    table = app.Table("pages", default=frozenset)
    pages = table.session(30, merge=frozenset.union, idle_timeout=None, grace=60)

    @app.agent(topic)
    async def visit(events: faust.Stream[str]) -> None:
        async for event in events.events():
            pages[event.key] |= {event.value}

    async with TestDriver(app) as driver:
        for page, at in [("home", 0), ("cart", 40), ("pay", 20)]:
            await driver.send("pages", key="u", value=page, timestamp=T0 + at)
        await driver.settle()
        assert dict(table.items()) == {("u", s(0, 40)): {"home", "cart", "pay"}}


async def test_late_events_and_expiry() -> None:
    closed: list[tuple[Any, Any]] = []
    late: list[tuple[Any, Any]] = []
    app, table, sessions, _ = clicks_app(
        "sess-late", expires=100, idle_timeout=None,
        on_close=lambda key, value: closed.append((key, value)),
        on_late=lambda key, value: late.append((key, value)))
    async with TestDriver(app) as driver:
        await click(driver, "a", 0)
        await click(driver, "b", 100)  # stream time 100 > 0 + 30: a's session closed
        await driver.settle()
        assert closed == [(("a", s(0, 0)), 1)]
        await click(driver, "a", 20)   # would extend the closed session: late
        await click(driver, "a", 60)   # its own session would close at 90 < 100: late
        await click(driver, "a", 80)   # open until 110: a new session
        await driver.settle()
        assert late == [(("a", s(0, 0)), 1), (("a", s(60, 60)), 1)]
        assert sessions.late_events == 2
        assert dict(table.items()) == {("a", s(0, 0)): 1, ("b", s(100, 100)): 1,
                                       ("a", s(80, 80)): 1}
        await click(driver, "b", 131)  # 131 > 0 + 30 + 100: a's first session expires
        await driver.settle()
        assert ("a", s(0, 0)) not in table
        assert closed == [  # b's first session too: 131 > 100 + 30
            (("a", s(0, 0)), 1), (("a", s(80, 80)), 1), (("b", s(100, 100)), 1)]
        await click(driver, "a", 5)  # long gone, still late
        await driver.settle()
        assert sessions.late_events == 3 and ("a", s(5, 5)) not in table


async def test_idle_partition_closes_its_last_session() -> None:
    closed: list[tuple[Any, Any]] = []
    app, table, _, _ = clicks_app("sess-idle", idle_timeout=10,
                                  on_close=lambda key, value: closed.append((key, value)))
    async with TestDriver(app) as driver:
        await click(driver, "a", 0)
        await click(driver, "a", 5)
        await driver.settle()
        await driver.advance(29)  # stream time follows the wall clock: 5 + 29 < 5 + 30
        assert closed == []
        await driver.advance(2)
        assert closed == [(("a", s(0, 5)), 2)]
        await driver.advance(60)
        assert closed == [(("a", s(0, 5)), 2)]
        assert dict(table.items()) == {("a", s(0, 5)): 2}


def test_use_partitioner_is_refused() -> None:
    app = faust.App("sess-partitioner", topic_partitions=1)
    with pytest.raises(ImproperlyConfigured, match="use_partitioner"):
        app.Table("t", default=int, use_partitioner=True).session(30)


# -- restart, on both transports and both stores -----------------------------------------


def build(name: str, topic_name: str, broker_url: str, closed: list[Any], store: str,
          datadir: Path) -> tuple[faust.App, Any, Any]:
    app = faust.App(name, broker=broker_url, topic_partitions=4, broker_commit_interval=0.2,
                    store=f"{store}://", datadir=str(datadir))
    topic = app.topic(topic_name, key_type=str, value_type=str, partitions=4)
    table = app.Table("clicks", default=int,
                      on_window_close=lambda key, value: closed.append((key, value)))
    sessions = table.session(30, expires=600, grace=30, idle_timeout=None)

    @app.agent(topic)
    async def count(stream: faust.Stream[str]) -> None:
        async for user in stream:
            sessions[user] += 1

    return app, topic, table


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
async def test_restart_restores_sessions_and_merges_later(
        broker_url: str, unique: Callable[[str], str], store: str, tmp_path: Path) -> None:
    base = float(int(time.time()))  # near now: Kafka's retention stays away

    def r(start: float, end: float) -> tuple[float, float]:
        return (base + start, base + end)

    name, topic_name = unique("sess"), unique("clicks")
    closed: list[Any] = []
    app, topic, table = build(name, topic_name, broker_url, closed, store, tmp_path)
    async with app.running():
        for user, at in [("a", 0), ("b", 1), ("a", 50)]:
            await topic.send(key=user, value=user, timestamp=base + at)
        await eventually(lambda: sum(table.values()) == 3, message="three clicks counted")
        await app.conductor.checkpoints.checkpoint()
        assert dict(table.items()) == {
            ("a", r(0, 0)): 1, ("a", r(50, 50)): 1, ("b", r(1, 1)): 1}
    assert closed == []

    app2, topic2, table2 = build(name, topic_name, broker_url, closed, store, tmp_path)
    async with app2.running():
        await eventually(lambda: dict(table2.items()) == {
            ("a", r(0, 0)): 1, ("a", r(50, 50)): 1, ("b", r(1, 1)): 1},
            message="sessions restored")
        # The restored sessions are known: this click bridges a's two sessions.
        await topic2.send(key="a", value="a", timestamp=base + 25)
        await eventually(lambda: dict(table2.items()) == {("a", r(0, 50)): 3, ("b", r(1, 1)): 1},
                         message="restored sessions merged")
        await app2.conductor.checkpoints.checkpoint()
        changelog = await read_changelog(app2, table2.changelog_topic_name, 4)
        tombstones = {tuple(json.loads(k)[1]) for k, v in changelog if v is None}
        assert tombstones == {r(0, 0), r(50, 50)}
        # Stream time is per partition: reach every partition to close all sessions.
        for i in range(40):
            await topic2.send(key=f"k{i}", value=f"k{i}", timestamp=base + 200)
        await eventually(lambda: len(closed) == 2, message="sessions closed")
        assert sorted(closed) == [(("a", r(0, 50)), 3), (("b", r(1, 1)), 1)]
