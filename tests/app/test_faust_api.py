"""Faust's API beyond the basics: pattern topics, stream batching and combining,
ask_nowait, app.stream/commit/discover/config_from_object, Table hooks and data,
Service, Worker."""

from __future__ import annotations

import asyncio
import sys
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fluvial as faust
from fluvial.exceptions import AlreadyConfiguredWarning, ImproperlyConfigured
from fluvial.tables.windowed import WindowWrapper
from fluvial.types import TP

from .conftest import eventually


async def committed(app: faust.App, tps: list[TP]) -> list[int | None]:
    """The offsets the app's group committed, as a new consumer of the group sees them."""
    consumer = app.transport.create_consumer(app.conf.id)
    await consumer.start()
    try:
        offsets = await consumer.committed(tps)
    finally:
        await consumer.stop()
    return [offsets.get(tp) for tp in tps]


def make_app(name: str, broker_url: str, **kwargs: Any) -> faust.App:
    return faust.App(name, broker=broker_url, topic_partitions=1, broker_commit_interval=0.2,
                     **kwargs)


async def test_pattern_topic_reads_matching_topics_and_new_ones(
        broker_url: str, unique: Callable[[str], str]) -> None:
    prefix = unique("pat")
    app = make_app(unique("pattern-app"), broker_url)
    first = app.topic(f"{prefix}-a", value_type=int)
    other = app.topic(unique("unrelated"), value_type=int)
    by_pattern = app.topic(pattern=f"^{prefix}-.*", value_type=int)
    seen: list[tuple[str, int]] = []

    @app.agent(by_pattern)
    async def read(stream: faust.Stream[int]) -> None:
        async for event in stream.events():
            seen.append((event.message.topic, event.value))

    await first.declare()
    await other.declare()
    async with app.running():
        await first.send(value=1)
        await other.send(value=99)
        await eventually(lambda: (f"{prefix}-a", 1) in seen, 60, "matching topic")
        # A matching topic created while the worker runs is picked up.
        later = app.topic(f"{prefix}-b", value_type=int)
        await later.declare()
        await later.send(value=2)
        await eventually(lambda: (f"{prefix}-b", 2) in seen, 60, "topic created later")
    assert sorted(seen) == [(f"{prefix}-a", 1), (f"{prefix}-b", 2)]
    assert await committed(app, [TP(f"{prefix}-a", 0), TP(f"{prefix}-b", 0)]) == [1, 1]


def test_pattern_topic_refuses_names_and_bad_expressions() -> None:
    app = faust.App("patterns", broker="memory://")
    with pytest.raises(ImproperlyConfigured, match="not both"):
        app.topic("a", pattern="^b")
    with pytest.raises(ImproperlyConfigured, match="not a regular expression"):
        app.topic(pattern="^(")
    assert app.topic(pattern="orders-.*").pattern == "^orders-.*"
    with pytest.raises(ImproperlyConfigured, match="names no one topic"):
        app.topic(pattern="^x").get_topic_name()


async def test_take_variants_and_combine(broker_url: str, unique: Callable[[str], str]) -> None:
    app = make_app(unique("take"), broker_url)
    left = app.topic(unique("left"), value_type=int)
    right = app.topic(unique("right"), value_type=int)
    batches: list[list[int]] = []
    stamped: list[list[dict[str, Any]]] = []
    combined: list[int] = []
    noacked: list[int] = []

    @app.agent(left)
    async def events(stream: faust.Stream[int]) -> None:
        async for batch in stream.take_events(3, within=0.5):
            batches.append([e.value for e in batch])

    @app.agent(left)
    async def with_ts(stream: faust.Stream[int]) -> None:
        async for batch in stream.take_with_timestamp(10, 0.5, "ts"):
            stamped.append(batch)

    @app.agent(left)
    async def merged(stream: faust.Stream[int]) -> None:
        async for value in stream & app.topic(right.get_topic_name(), value_type=int).stream():
            combined.append(value)

    @app.agent(right)
    async def manual(stream: faust.Stream[int]) -> None:
        async for values in stream.noack_take(10, 0.3):
            noacked.extend(values)

    async with app.running():
        for i in range(6):
            await left.send(value=i, timestamp=1000.0 + i)
        for i in range(100, 103):
            await right.send(value=i)
        await eventually(lambda: sum(map(len, batches)) == 6 and len(combined) == 9
                         and sum(map(len, stamped)) == 6 and len(noacked) == 3)
    assert [v for b in batches for v in b] == list(range(6))
    assert all(len(b) <= 3 for b in batches)
    assert [d for b in stamped for d in b] == [{"value": i, "ts": 1000.0 + i} for i in range(6)]
    assert sorted(combined) == [*range(6), 100, 101, 102]
    # Everything the combined stream read is committed: it acknowledged the events;
    # noack_take left acknowledging to the agent, which did not: not committed.
    assert await committed(app, [TP(left.get_topic_name(), 0),
                                 TP(right.get_topic_name(), 0)]) == [6, None]


async def test_ask_nowait_returns_a_future_of_the_reply(
        broker_url: str, unique: Callable[[str], str]) -> None:
    app = make_app(unique("asknw"), broker_url)

    @app.agent(app.topic(unique("double"), value_type=int))
    async def double(stream: faust.Stream[int]) -> Any:
        async for value in stream:
            yield value * 2

    async with app.running():
        pending = [await double.ask_nowait(i) for i in range(3)]
        assert all(isinstance(p, asyncio.Future) for p in pending)
        assert await asyncio.wait_for(asyncio.gather(*pending), 60) == [0, 2, 4]


async def test_app_stream_of_iterables_and_app_commit(broker_url: str,
                                                      unique: Callable[[str], str]) -> None:
    app = make_app(unique("appstream"), broker_url)
    got: list[int] = []

    async def source() -> Any:
        for i in range(3):
            yield i

    @app.task
    async def read() -> None:
        async for value in app.stream([10, 20]):
            got.append(value)
            if len(got) == 2:
                break
        async for value in app.stream(source()):
            got.append(value)
            if len(got) == 5:
                break

    topic = app.topic(unique("commits"), value_type=int)
    processed: list[int] = []

    @app.agent(topic)
    async def count(stream: faust.Stream[int]) -> None:
        async for value in stream:
            processed.append(value)

    assert await app.commit() is False  # no worker
    async with app.running():
        await eventually(lambda: got == [10, 20, 0, 1, 2])
        await topic.send(value=1)
        await topic.send(value=2)
        await eventually(lambda: len(processed) == 2)
        await asyncio.sleep(0.05)  # the agent asks for its next event: both processed
        commits = app.monitor.commits_total
        assert await app.commit()
        assert await committed(app, [TP(topic.get_topic_name(), 0)]) == [2]
        # The Monitor heard of the commit and of the group's rebalance.
        assert app.monitor.commits_total >= commits + 1
        assert app.monitor.rebalances >= 1 and app.monitor.commit_latency
    with pytest.raises(ImproperlyConfigured, match="iterable"):
        app.stream(42)


class CountingTable(faust.Table):
    """A table overriding Faust's key hooks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, Any]] = []

    def on_key_get(self, key: Any) -> None:
        self.calls.append(("get", key))

    def on_key_set(self, key: Any, value: Any) -> None:
        self.calls.append(("set", key))

    def on_key_del(self, key: Any) -> None:
        self.calls.append(("del", key))


async def test_table_hooks_data_reset_state_and_window(tmp_path: Path,
                                                       unique: Callable[[str], str]) -> None:
    app = faust.App(unique("tablehooks"), broker=f"memory://{unique('b')}", topic_partitions=1,
                    datadir=str(tmp_path), store="rocksdb://")
    table = app.tables.add(CountingTable(app, name="hooked", default=int,
                                         use_partitioner=True))
    windowed = app.Table("per-minute", default=int, window=faust.TumblingWindow(60))
    plain = app.Table("plain", default=int, use_partitioner=True)

    @app.agent(app.topic("input"))
    async def idle(stream: faust.Stream[Any]) -> None:  # the worker joins its group
        async for _ in stream:
            pass

    async with app.running():
        await eventually(lambda: bool(app.conductor.assignment()))
        table["a"] += 1
        del table["a"]
        table["b"] = 5
        plain["x"] = 1
        assert dict(table.data) == {"b": 5} and "a" not in table.data
        assert table.calls == [("get", "a"), ("set", "a"), ("del", "a"), ("set", "b")]
        assert isinstance(windowed, WindowWrapper)
        assert isinstance(windowed.table.window, faust.TumblingWindow)
        assert windowed.table.window.size == 60
        with pytest.raises(ImproperlyConfigured, match="stop the worker"):
            plain.reset_state()
    # The worker stopped: its RocksDB copy of the table stays on disk until reset.
    assert list(app.conf.table_path.glob("plain-*.db"))
    plain.reset_state()
    assert not list(app.conf.table_path.glob("plain-*.db"))
    assert list(app.conf.table_path.glob("hooked-*.db"))  # other tables keep theirs
    assert len(plain.data) == 0 and plain.partitions_held() == []


def test_config_from_object_module_mapping_and_precedence(unique: Callable[[str], str]) -> None:
    module = types.ModuleType(unique("settings_mod").replace("-", "_"))
    module.BROKER = "memory://from-module"  # type: ignore[attr-defined]
    module.topic_partitions = 3  # type: ignore[attr-defined]
    module.helper = object()  # type: ignore[attr-defined]  # not a setting: ignored
    sys.modules[module.__name__] = module
    try:
        app = faust.App("cfg", topic_partitions=5)
        app.config_from_object(module.__name__)
        assert app.conf.broker == "memory://from-module"
        assert app.conf.topic_partitions == 5  # App() arguments win
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            app.config_from_object({"broker": "memory://from-dict"})
        assert any(issubclass(w.category, AlreadyConfiguredWarning) for w in caught)
        assert app.conf.broker == "memory://from-dict"
    finally:
        del sys.modules[module.__name__]
    quiet = faust.App("cfg2")
    quiet.config_from_object("no.such.settings.module", silent=True)
    assert quiet.conf.id == "cfg2"
    loud = faust.App("cfg3")
    loud.config_from_object("no.such.settings.module")
    with pytest.raises(ImportError):
        loud.finalize()


def test_discover_imports_every_module_of_a_package(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    unique: Callable[[str], str]) -> None:
    package = unique("discovered").replace("-", "_")
    root = tmp_path / package
    (root / "sub").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    register = ("from {pkg}.registry_app import app\n"
                "@app.agent(app.topic('t-{name}'))\n"
                "async def agent_{name}(stream):\n"
                "    async for _ in stream: pass\n")
    (root / "registry_app.py").write_text("import fluvial\napp = fluvial.App('discovered')\n")
    (root / "agents.py").write_text(register.format(pkg=package, name="a"))
    (root / "sub" / "more.py").write_text(register.format(pkg=package, name="b"))
    (root / "tests" / "test_x.py").write_text("raise RuntimeError('tests are not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = __import__(f"{package}.registry_app", fromlist=["app"])
    app = registry.app
    assert app._origin_package() == package
    assert not app.agents
    app.discover()
    assert sorted(app.agents) == [f"{package}.agents.agent_a", f"{package}.sub.more.agent_b"]


async def test_service_hooks_tasks_and_timers(unique: Callable[[str], str]) -> None:
    app = faust.App(unique("svc"), broker=f"memory://{unique('b')}")
    log: list[str] = []

    @app.service
    class Poller(faust.Service):
        async def on_start(self) -> None:
            log.append("start")

        async def on_stop(self) -> None:
            log.append("stop")

        @faust.Service.task
        async def background(self) -> None:
            log.append("task")
            await self.sleep(60)

        @faust.Service.timer(0.05)
        async def tick(self) -> None:
            log.append("tick")

    async with app.running():
        await eventually(lambda: log.count("tick") >= 2)
    assert log[:2] == ["start", "task"] and log[-1] == "stop"


def test_worker_runs_the_app_and_uuid(unique: Callable[[str], str]) -> None:
    app = faust.App(unique("worker"), broker=f"memory://{unique('b')}")
    ran: list[bool] = []

    @app.task
    async def started() -> None:
        ran.append(True)

    assert faust.Worker(app, loglevel="warning").run(duration=0.3) == 0
    assert ran == [True]
    a, b = faust.uuid(), faust.uuid()
    assert a != b and len(a) == 36
