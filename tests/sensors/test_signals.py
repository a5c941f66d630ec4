"""Faust's signals: connected receivers are called with the app and the signal's arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import fluvial as faust
from fluvial.exceptions import ImproperlyConfigured
from fluvial.types import TP

from .conftest import eventually


async def test_signals_of_a_running_app(broker_url: str, unique: Callable[[str], str]) -> None:
    # Configuration signals are connected first: declaring topics reads the settings.
    app = faust.App(unique("signals"), broker=broker_url, topic_partitions=3)
    calls: list[tuple[str, Any]] = []

    @app.on_before_configured.connect
    def before(sender: faust.App, **kwargs: Any) -> None:
        calls.append(("before_configured", sender))

    @app.on_configured.connect
    def configured(sender: faust.App, conf: Any, **kwargs: Any) -> None:
        calls.append(("configured", conf.id))

    @app.on_after_configured.connect()
    def after(sender: faust.App, **kwargs: Any) -> None:
        calls.append(("after_configured", kwargs["signal"].name))

    @app.on_partitions_assigned.connect
    async def assigned(sender: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        calls.append(("assigned", frozenset(assigned)))

    @app.on_rebalance_complete.connect
    async def complete(sender: faust.App, **kwargs: Any) -> None:
        calls.append(("rebalance_complete", None))

    @app.on_produce_message.connect
    def produced(sender: faust.App, key: Any, value: Any, **kwargs: Any) -> None:
        calls.append(("produce", value))

    @app.on_before_shutdown.connect
    async def shutdown(sender: faust.App, **kwargs: Any) -> None:
        calls.append(("before_shutdown", sender.started))

    seen: list[str] = []
    topic = app.topic(unique("things"), value_type=str, partitions=3)

    @app.agent(topic)
    async def things(stream: faust.Stream[str]) -> None:
        async for thing in stream:
            seen.append(thing)

    assert app.conf.id == app.id
    assert calls == [("before_configured", app), ("configured", app.id),
                     ("after_configured", "on_after_configured")]
    async with app.running():
        await eventually(lambda: any(name == "rebalance_complete" for name, _ in calls),
                         message="a rebalance")
        await topic.send(key=b"k", value="hello")
        await eventually(lambda: seen == ["hello"], message="the event")
    names = [name for name, _ in calls]
    # Configured once only, however often the conf is read.
    assert names.count("configured") == 1
    given = {tp for name, tps in calls if name == "assigned" for tp in tps}
    assert given == {TP(topic.get_topic_name(), p) for p in range(3)}
    assert names.index("assigned") < names.index("rebalance_complete")
    assert ("produce", "hello") in calls
    assert names[-1] == "before_shutdown" and calls[-1] == ("before_shutdown", True)


async def test_partitions_revoked_when_a_second_worker_joins(unique: Callable[[str], str]) -> None:
    broker = f"memory://{unique('b')}"
    name, topic_name = unique("revoke"), unique("t")
    revoked: list[set[TP]] = []
    apps = [faust.App(name, broker=broker, topic_partitions=2, web_port=7000 + i)
            for i in range(2)]
    for app in apps:
        topic = app.topic(topic_name, value_type=str, partitions=2)

        @app.agent(topic)
        async def things(stream: faust.Stream[str]) -> None:
            async for _ in stream:
                pass

    @apps[0].on_partitions_revoked.connect
    async def on_revoked(sender: faust.App, revoked_tps: set[TP], **kwargs: Any) -> None:
        revoked.append(set(revoked_tps))

    async with apps[0].running():
        await eventually(lambda: len(apps[0].conductor.assignment()) == 2, message="2 parts")
        async with apps[1].running():
            await eventually(lambda: len(apps[0].conductor.assignment()) == 1,
                             message="one partition moved")
    assert revoked and revoked[0] == {TP(topic_name, 0), TP(topic_name, 1)}


def test_a_failing_receiver_is_logged_and_the_others_run(caplog: Any) -> None:
    app = faust.App("signals-failing", broker="memory://")
    called: list[str] = []

    @app.on_worker_init.connect
    def broken(sender: faust.App, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    @app.on_worker_init.connect
    def fine(sender: faust.App, **kwargs: Any) -> None:
        called.append("fine")

    app.on_worker_init.send()
    assert called == ["fine"]
    assert "receiver bug" in caplog.text
    app.on_worker_init.disconnect(broken)
    assert app.on_worker_init.receivers == [fine]


def test_connect_refuses_what_is_not_a_function() -> None:
    app = faust.App("signals-bad", broker="memory://")
    with pytest.raises(ImproperlyConfigured, match="needs a function"):
        app.on_worker_init.connect(42)  # type: ignore[arg-type]
