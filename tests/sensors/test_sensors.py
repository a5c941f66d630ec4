"""Sensors: Faust's hooks with their arguments, the monitor's figures, adding and removing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import fluvial as faust
from fluvial.sensors import Monitor, Sensor
from fluvial.types import TP

from .conftest import eventually


class Recorder(Sensor):
    """A Faust-style sensor with per-event hooks: records what it is told."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.messages_in: list[tuple[TP, int]] = []
        self.events_out: list[tuple[TP, int, Any]] = []
        self.messages_out: list[int] = []
        self.table_sets: list[tuple[str, Any, Any]] = []
        self.sent: list[tuple[str, int]] = []
        self.commits = 0

    def on_message_in(self, tp: TP, offset: int, message: Any) -> None:
        self.messages_in.append((tp, offset))

    def on_stream_event_in(self, tp: TP, offset: int, stream: Any,
                           event: Any) -> dict[str, Any]:
        self.calls["event_in"] += 1
        return {"offset": offset}

    def on_stream_event_out(self, tp: TP, offset: int, stream: Any, event: Any,
                            state: dict[str, Any] | None = None) -> None:
        self.events_out.append((tp, offset, state))

    def on_message_out(self, tp: TP, offset: int, message: Any) -> None:
        self.messages_out.append(offset)

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        self.table_sets.append((table.name, key, value))

    def on_commit_initiated(self, consumer: Any) -> Any:
        return "started"

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        assert state == "started"
        self.commits += 1

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int,
                          valsize: int) -> Any:
        return (topic, valsize)

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        self.sent.append(state)

    def on_rebalance_start(self, app: Any) -> dict[str, Any]:
        self.calls["rebalance_start"] += 1
        return {"n": 1}

    def on_rebalance_return(self, app: Any, state: dict[str, Any]) -> None:
        assert state == {"n": 1}
        self.calls["rebalance_return"] += 1

    def on_rebalance_end(self, app: Any, state: dict[str, Any]) -> None:
        assert state == {"n": 1}
        self.calls["rebalance_end"] += 1


def make_app(name: str, broker_url: str) -> faust.App:
    return faust.App(name, broker=broker_url, topic_partitions=2, broker_commit_interval=0.2)


async def test_sensor_hooks_receive_faust_arguments(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    app = make_app(unique("sensed"), broker_url)
    topic = app.topic(unique("words"), value_type=str, partitions=2)
    out = app.topic(unique("lengths"), value_type=int, partitions=2)
    counts = app.Table(unique("counts"), default=int, partitions=2)
    recorder = Recorder()
    app.sensors.add(recorder)
    seen: list[str] = []

    @app.agent(topic)
    async def count(words: faust.Stream[str]) -> None:
        async for word in words:
            counts[word] += 1
            await out.send(value=len(word))
            seen.append(word)

    words = [f"w{i % 5}" for i in range(60)]
    async with app.running():
        for i, word in enumerate(words):
            await topic.send(key=str(i).encode(), value=word)
        await eventually(lambda: len(seen) == 60, message="60 words")
        # The test's 60 sends of words, the agent's 60 of lengths.
        await eventually(lambda: len(recorder.sent) == 120, message="120 sends completed")
        await app.conductor.checkpoints.checkpoint()
    name = topic.get_topic_name()
    assert sorted(recorder.messages_in) == sorted(
        (tp, off) for tp, off in recorder.messages_in if tp.topic == name)
    assert len(recorder.messages_in) == 60
    assert recorder.calls["event_in"] == 60
    # Out with the state its "in" returned, and the message done (one stream).
    assert len(recorder.events_out) >= 59
    assert all(state == {"offset": off} for _, off, state in recorder.events_out)
    assert len(recorder.messages_out) == len(recorder.events_out)
    assert Counter(k for _, k, _ in recorder.table_sets) == Counter(words)
    assert Counter(t for t, _ in recorder.sent) == {name: 60, out.get_topic_name(): 60}
    assert {size for t, size in recorder.sent if t == out.get_topic_name()} == {1}
    assert recorder.commits >= 1
    assert recorder.calls["rebalance_start"] >= 1
    assert recorder.calls["rebalance_return"] == recorder.calls["rebalance_end"] >= 1


async def test_monitor_counts_messages_events_and_commits(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    app = make_app(unique("monitored"), broker_url)
    topic = app.topic(unique("numbers"), value_type=int, partitions=2)
    seen: list[int] = []

    @app.agent(topic, name="summer")
    async def summer(numbers: faust.Stream[int]) -> None:
        async for n in numbers:
            seen.append(n)

    async with app.running():
        assert app.monitor in app.sensors
        for i in range(250):
            await topic.send(key=str(i).encode(), value=i)
        await eventually(lambda: len(seen) == 250, message="250 numbers")
        await app.conductor.checkpoints.checkpoint()
        # The last run is reported once the buffer runs empty.
        await eventually(lambda: app.monitor.events_total == 250, message="events counted")
        app.monitor.sample()
    monitor = app.monitor
    name = topic.get_topic_name()
    assert monitor.messages_received_total == 250
    assert monitor.messages_received_by_topic[name] == 250
    assert monitor.events_by_agent["summer"] == 250
    assert monitor.agent_runtime["summer"].count == 250
    assert monitor.end_to_end_latency[name].count >= 1
    assert monitor.commit_latency and monitor.commit_histogram.count >= 1
    assert monitor.messages_sent_by_topic == {name: 250} and monitor.messages_sent == 250
    assert monitor.send_latency  # the checkpoints' producer flushes
    assert monitor.rebalances >= 1 and monitor.assignments_completed >= 1
    assert sum(monitor.tp_read_offsets[TP(name, p)] for p in range(2)) == 250
    report = monitor.asdict()
    assert report["messages_received_total"] == 250
    assert report["events_by_agent"] == {"summer": 250}
    assert sum(report["topic_read"][name].values()) == 250


async def test_monitor_events_active_counts_what_agents_hold_when_read(
    unique: Callable[[str], str]
) -> None:
    app = make_app(unique("active"), f"memory://{unique('b')}")
    topic = app.topic(unique("numbers"), value_type=int, partitions=1)
    holding = asyncio.Event()
    release = asyncio.Event()
    seen: list[int] = []

    @app.agent(topic)
    async def holder(stream: faust.Stream[int]) -> None:
        async for n in stream:
            holding.set()
            await release.wait()
            seen.append(n)

    async with app.running():
        await topic.send(key=b"k", value=1)
        await asyncio.wait_for(holding.wait(), 30)
        # No sample() in between: the figure is taken when read.
        assert app.monitor.events_active == 1
        assert app.monitor.asdict()["events_active"] == 1
        release.set()
        await eventually(lambda: seen == [1], message="the event finished")
        await eventually(lambda: app.monitor.events_active == 0, message="none held")


async def test_without_sensors_no_hook_runs_and_a_sensor_added_later_hears_events(
    unique: Callable[[str], str]
) -> None:
    app = make_app(unique("quiet"), f"memory://{unique('b')}")
    topic = app.topic(unique("numbers"), value_type=int, partitions=2)
    seen: list[int] = []

    @app.agent(topic)
    async def numbers(stream: faust.Stream[int]) -> None:
        async for n in stream:
            seen.append(n)

    async with app.running():
        app.sensors.remove(app.monitor)
        assert len(app.sensors) == 0
        assert not (app.sensors.messages or app.sensors.streams or app.sensors.tables
                    or app.sensors.sends)
        for i in range(20):
            await topic.send(key=str(i).encode(), value=i)
        await eventually(lambda: len(seen) == 20, message="first 20")
        assert app.monitor.messages_received_total == 0
        monitor = Monitor()
        app.sensors.add(monitor)
        assert monitor.app is app
        for i in range(20, 50):
            await topic.send(key=str(i).encode(), value=i)
        await eventually(lambda: len(seen) == 50, message="50 numbers")
        await eventually(lambda: monitor.events_total == 30, message="30 events counted")
    assert monitor.messages_received_total == 30


async def test_a_failing_sensor_is_logged_and_does_not_stop_the_worker(
    unique: Callable[[str], str], caplog: Any
) -> None:
    class Broken(Sensor):
        def on_messages_in(self, topic: str, messages: Any) -> None:
            raise RuntimeError("sensor bug")

    app = make_app(unique("broken"), f"memory://{unique('b')}")
    topic = app.topic(unique("numbers"), value_type=int, partitions=1)
    seen: list[int] = []

    @app.agent(topic)
    async def numbers(stream: faust.Stream[int]) -> None:
        async for n in stream:
            seen.append(n)

    app.sensors.add(Broken())
    async with app.running():
        for i in range(5):
            await topic.send(value=i)
        await eventually(lambda: len(seen) == 5, message="5 numbers")
    assert "sensor bug" in caplog.text
    assert app.fatal_error is None


def test_faust_names() -> None:
    import fluvial.sensors

    assert faust.Sensor is Sensor and faust.Monitor is Monitor
    assert fluvial.sensors.Monitor is Monitor
    app = faust.App("names", broker="memory://")
    assert isinstance(app.monitor, Monitor)
    custom = Monitor(max_avg_history=5)
    app.monitor = custom
    assert app.monitor is custom and custom.events_runtime.maxlen == 5

