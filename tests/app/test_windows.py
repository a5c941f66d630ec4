"""Windowed tables: window math, Faust's accessors, closing, late events, changelog, restart."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import fluvial as faust
from fluvial.exceptions import ImproperlyConfigured, TableError
from fluvial.testing.driver import TestDriver
from fluvial.types import TP

from .conftest import eventually

T0 = 1_700_000_000.0  # the TestDriver's clock starts here; a multiple of 10


def w(start: float, size: float = 10.0) -> tuple[float, float]:
    """A window range as Faust labels it."""
    return (T0 + start, T0 + start + size - 0.1)


# -- window math ----------------------------------------------------------------------


def faust_hopping_ranges(size: int, step: int, ts: int) -> list[tuple[float, float]]:
    """Faust's own formula (integer timestamps), to check our keys match its keys."""
    start = (ts // step) * step - size + step
    return [(float(s), float(s) + size - 0.1) for s in range(int(start), ts + 1, step)]


@pytest.mark.parametrize(("size", "step"), [(10, 10), (10, 5), (60, 15), (7, 7)])
def test_hopping_ranges_match_faust(size: int, step: int) -> None:
    window = faust.HoppingWindow(size, step)
    for ts in range(0, 200):
        assert window.ranges(float(ts)) == faust_hopping_ranges(size, step, ts), ts


def test_tumbling_window_math() -> None:
    window = faust.TumblingWindow(timedelta(seconds=10), expires=timedelta(minutes=1))
    assert window.size == 10.0 and window.expires == 60.0
    assert window.ranges(15.0) == [(10.0, 19.9)]
    assert window.ranges(20.0) == [(20.0, 29.9)]
    assert window.ranges(19.95) == [(10.0, 19.9)]  # the label's end is not the real end
    assert window.current(15.0) == window.earliest(15.0) == (10.0, 19.9)
    assert window.delta(15.0, 10) == (0.0, 9.9)
    assert window.closes_at((10.0, 19.9)) == 20.0
    # Faust's staleness: a window ending at 19.9 has expired once 60s more went by.
    assert not window.stale(19.9, 75.0)
    assert window.stale(19.9, 80.0)
    assert not faust.TumblingWindow(10).stale(0.0, 10**9)  # no expires: never stale


def test_hopping_window_math() -> None:
    window = faust.HoppingWindow(10, 5)
    assert window.ranges(12.0) == [(5.0, 14.9), (10.0, 19.9)]
    assert window.current(12.0) == (10.0, 19.9)
    assert window.earliest(12.0) == (5.0, 14.9)
    assert window.delta(12.0, 5) == (5.0, 14.9)
    # A step that does not divide the size: starts stay multiples of the step.
    assert faust.HoppingWindow(10, 3).ranges(10.0) == [(3.0, 12.9), (6.0, 15.9), (9.0, 18.9)]
    with pytest.raises(ImproperlyConfigured, match="gaps"):
        faust.HoppingWindow(5, 10)
    with pytest.raises(ImproperlyConfigured, match="> 0"):
        faust.TumblingWindow(0)


def test_sliding_window_math() -> None:
    window = faust.SlidingWindow(2, 3, expires=10)
    assert window.ranges(10.0) == [(8.0, 13.0)]
    assert window.current(10.0) == window.earliest(10.0) == (8.0, 13.0)
    assert window.delta(10.0, 4) == (4.0, 9.0)
    assert window.closes_at((8.0, 13.0)) == 13.0
    assert window.stale(13.0, 23.0) and not window.stale(13.0, 22.0)


# -- Faust's accessors on the test driver ---------------------------------------------------


def views_app(name: str, **window: Any) -> tuple[faust.App, Any, Any, list[Any]]:
    app = faust.App(name, topic_partitions=1)
    topic = app.topic("views", key_type=str, value_type=str)
    counts = app.Table("views", default=int, on_window_close=window.pop("on_close", None),
                       on_late_event=window.pop("on_late", None))
    kind = window.pop("kind", "tumbling")
    windowed = counts.hopping(10, 5, **window) if kind == "hopping" else counts.tumbling(
        10, **window)
    seen: list[Any] = []

    @app.agent(topic)
    async def count(events: faust.Stream[str]) -> None:
        async for event in events.events():
            page = event.value
            windowed[page] += 1
            ws = windowed[page]
            seen.append((page, ws.current(), ws.value(), ws.delta(10), page in windowed))

    return app, counts, windowed, seen


async def send(driver: TestDriver, page: str, at: float) -> None:
    await driver.send("views", key=page, value=page, timestamp=T0 + at)


async def test_tumbling_counts_and_accessors() -> None:
    app, counts, views, seen = views_app("win-tumbling")
    async with TestDriver(app) as driver:
        for page, at in [("a", 1), ("a", 2), ("b", 3), ("a", 11), ("a", 12.5)]:
            await send(driver, page, at)
        await driver.settle()
        # current() and value() (relative to the stream by default) read the event's window;
        # delta(10) the window before it.
        assert seen == [
            ("a", 1, 1, 0, True), ("a", 2, 2, 0, True), ("b", 1, 1, 0, True),
            ("a", 1, 1, 2, True), ("a", 2, 2, 2, True),
        ]
        assert dict(counts.items()) == {("a", w(0)): 2, ("b", w(0)): 1, ("a", w(10)): 2}
        # now(): the window of the app's (virtual) wall clock, which stands at T0.
        assert views["a"].now() == 2 and views["b"].now() == 1
        assert sorted(views.items().now()) == [("a", 2), ("b", 1)]
        assert sorted(views) == ["a", "b"] and len(views) == 2
        assert sorted(views.keys().now()) == ["a", "b"]
        assert sorted(views.values().now()) == [1, 2]
        await driver.advance(10)
        assert views["a"].now() == 2 and views["b"].now() == 0
        # Outside a stream, the stream-relative accessors say what they need.
        with pytest.raises(TableError, match="inside a stream"):
            views["a"].current()
        assert views.relative_to_now()["a"].value() == 2
        assert "'a'" in views.as_ansitable()


async def test_hopping_updates_every_window_of_the_event() -> None:
    app, counts, _views, _ = views_app("win-hopping", kind="hopping")
    async with TestDriver(app) as driver:
        await send(driver, "a", 12)
        await send(driver, "a", 16)
        await driver.settle()
        assert dict(counts.items()) == {
            ("a", w(5)): 1, ("a", w(10)): 2, ("a", w(15)): 1,
        }


async def test_relative_to_field() -> None:
    class Click(faust.Record, serializer="json"):
        page: str
        at: float

    app = faust.App("win-field", topic_partitions=1)
    topic = app.topic("clicks", key_type=str, value_type=Click)
    counts = app.Table("clicks", default=int)
    clicks = counts.tumbling(10).relative_to_field(Click.at)

    @app.agent(topic)
    async def count(stream: faust.Stream[Click]) -> None:
        async for click in stream:
            clicks[click.page] += 1

    async with TestDriver(app) as driver:
        # The message timestamps say window 0; the field says windows 20 and 30.
        await driver.send("clicks", key="a", value=Click(page="a", at=T0 + 25), timestamp=T0)
        await driver.send("clicks", key="a", value=Click(page="a", at=T0 + 31), timestamp=T0)
        await driver.settle()
        assert dict(counts.items()) == {("a", w(20)): 1, ("a", w(30)): 1}


# -- closing, expiry, late events -------------------------------------------------------------


async def test_windows_close_on_stream_time_once_and_expire() -> None:
    closed: list[tuple[Any, Any]] = []
    late: list[tuple[Any, Any]] = []
    app, counts, views, _ = views_app(
        "win-close", expires=20, grace=2, idle_timeout=None,
        on_close=lambda key, value: closed.append((key, value)),
        on_late=lambda key, value: late.append((key, value)))
    async with TestDriver(app) as driver:
        for page, at in [("a", 1), ("a", 3), ("b", 5), ("a", 11)]:
            await send(driver, page, at)
        await driver.settle()
        assert closed == []  # stream time 11 < end 10 + grace 2
        await send(driver, "a", 9)  # out of order, within the grace period: counted
        await send(driver, "b", 12.5)  # stream time 12.5 passes 10 + 2
        await driver.settle()
        assert closed == [(("a", w(0)), 3), (("b", w(0)), 1)]
        await send(driver, "a", 13)
        await driver.settle()
        assert len(closed) == 2  # once per window
        assert ("a", w(0)) in counts  # closed, not yet expired
        await send(driver, "c", 31)  # 31 > 10 + 20: window 0 expires; window 10 closes
        await driver.settle()
        assert closed[2:] == [(("a", w(10)), 2), (("b", w(10)), 1)]
        assert ("a", w(0)) not in counts and ("b", w(0)) not in counts
        assert dict(counts.items()) == {("a", w(10)): 2, ("b", w(10)): 1, ("c", w(30)): 1}
        await send(driver, "a", 5)  # window 0 closed long ago: late
        await driver.settle()
        assert late == [(("a", w(0)), 1)]
        assert views.late_events == 1
        assert ("a", w(0)) not in counts
        # The expired windows left tombstones in the changelog.
        changelog = await read_changelog(app, counts.changelog_topic_name, 1)
        tombstones = {key for key, value in changelog if value is None}
        assert {json.dumps(["a", list(w(0))]), json.dumps(["b", list(w(0))])} <= {
            json.dumps(json.loads(k)) for k in tombstones}


async def test_idle_partition_closes_its_last_window_on_the_wall_clock() -> None:
    closed: list[tuple[Any, Any]] = []
    app, counts, _, _ = views_app("win-idle", idle_timeout=30,
                                  on_close=lambda key, value: closed.append((key, value)))
    async with TestDriver(app) as driver:
        await send(driver, "a", 1)
        await send(driver, "a", 2)
        await driver.settle()
        await driver.advance(29)
        assert closed == []  # idle for less than idle_timeout
        await driver.advance(2)
        assert closed == [(("a", w(0)), 2)]
        await driver.advance(60)
        assert closed == [(("a", w(0)), 2)]
        assert dict(counts.items()) == {("a", w(0)): 2}  # no expires: kept, as in Faust


async def test_async_on_window_close() -> None:
    closed: list[Any] = []

    async def on_close(key: Any, value: Any) -> None:
        closed.append((key, value))

    app, _, _, _ = views_app("win-async", idle_timeout=None, on_close=on_close)
    async with TestDriver(app) as driver:
        await send(driver, "a", 1)
        await send(driver, "a", 20)
        await driver.settle()
        await eventually(lambda: closed == [(("a", w(0)), 1)], timeout=5,
                         message="async on_window_close")


# -- changelog and restart, on both transports ------------------------------------------------


async def read_changelog(app: faust.App, topic: str,
                         partitions: int) -> list[tuple[bytes, bytes | None]]:
    consumer = app.transport.create_consumer(None)
    await consumer.start()
    try:
        tps = {TP(topic, p) for p in range(partitions)}
        ends = await consumer.end_offsets(tps)
        consumer.assign({tp: 0 for tp in tps})
        messages: list[Any] = []
        loop_until = time.monotonic() + 20
        while len(messages) < sum(ends.values()) and time.monotonic() < loop_until:
            messages += await consumer.getmany(1000, 0.2)
    finally:
        await consumer.stop()
    messages.sort(key=lambda m: (m.partition, m.offset))
    return [(m.key, m.value) for m in messages]


def build(name: str, topic_name: str, broker_url: str, closed: list[Any],
          store: str, datadir: Path) -> tuple[faust.App, Any, Any]:
    app = faust.App(name, broker=broker_url, topic_partitions=4, broker_commit_interval=0.2,
                    store=f"{store}://", datadir=str(datadir))
    topic = app.topic(topic_name, key_type=str, value_type=str, partitions=4)
    counts = app.Table("pageviews", default=int,
                       on_window_close=lambda key, value: closed.append((key, value)))
    views = counts.tumbling(10, expires=30, idle_timeout=None)

    @app.agent(topic)
    async def count(stream: faust.Stream[str]) -> None:
        async for page in stream:
            views[page] += 1

    return app, topic, counts


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
async def test_changelog_keys_and_restart(broker_url: str, unique: Callable[[str], str],
                                          store: str, tmp_path: Path) -> None:
    """Changelog keys are Faust's ``[key, [start, end]]``; a restart restores and closes."""
    base = float(int(time.time()) // 10 * 10)  # near now: Kafka's retention stays away
    name, topic_name = unique("win"), unique("pageviews")
    closed: list[Any] = []
    app, topic, counts = build(name, topic_name, broker_url, closed, store, tmp_path)
    window0 = (base, base + 9.9)
    async with app.running():
        for page, at in [("a", 1), ("a", 2), ("b", 3)]:
            await topic.send(key=page, value=page, timestamp=base + at)
        await eventually(lambda: sum(counts.values()) == 3, message="three views counted")
        await app.conductor.checkpoints.checkpoint()
        changelog = await read_changelog(app, counts.changelog_topic_name, 4)
        assert counts.changelog_topic.deleting  # windowed changelogs compact and delete
    keys = [json.loads(k) for k, _ in changelog]
    decoded = {(key, tuple(rng)): json.loads(v)
               for (key, rng), (_, v) in zip(keys, changelog, strict=True) if v is not None}
    assert decoded == {("a", window0): 2, ("b", window0): 1}
    assert all(k.startswith(b'["') and k.endswith(b"]]") for k, _ in changelog)
    assert closed == []

    # A new worker restores the windows, then closes and expires them on stream time.
    app2, topic2, counts2 = build(name, topic_name, broker_url, closed, store, tmp_path)
    async with app2.running():
        await eventually(lambda: dict(counts2.items()) == {("a", window0): 2, ("b", window0): 1},
                         message="windows restored")
        # Stream time is per partition: send to every partition to close window 0 in all.
        for i in range(40):
            await topic2.send(key=f"k{i}", value=f"k{i}", timestamp=base + 21)
        await eventually(lambda: len(closed) == 2, message="restored windows closed")
        assert sorted(closed) == [(("a", window0), 2), (("b", window0), 1)]
        # Window 0 closed at 10 and expires at 10 + 30.
        await topic2.send(key="a", value="a", timestamp=base + 21)
        for i in range(40):
            await topic2.send(key=f"k{i}", value=f"k{i}", timestamp=base + 45)
        await eventually(lambda: ("a", window0) not in counts2 and ("b", window0) not in counts2,
                         message="window 0 expired")
        assert counts2[("a", (base + 20, base + 29.9))] == 1
        assert sorted(c for c in closed if c[0][1] == window0) == [
            (("a", window0), 2), (("b", window0), 1)]  # still once per window
