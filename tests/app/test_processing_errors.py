"""An agent that raises on an event (on_error=), and agents that end or cannot run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

import fluvial as faust
from fluvial.exceptions import ImproperlyConfigured, WorkerStopped
from fluvial.types import TP

from .conftest import eventually
from .test_agents import committed, make_app
from .test_bad_input import read_all


def fragile_app(name: str, broker_url: str, topic_name: str, fails: int = 1 << 30,
                **agent_options: Any) -> tuple[faust.App, faust.Topic[int], list[int]]:
    """An agent that raises on 3 the first ``fails`` times it sees it."""
    app = make_app(name, broker_url)
    topic = app.topic(topic_name, value_type=int, partitions=1)
    seen: list[int] = []
    attempts: list[int] = []

    @app.agent(topic, **agent_options)
    async def fragile(values: faust.Stream[int]) -> None:
        async for value in values:
            if value == 3:
                attempts.append(value)
                if len(attempts) <= fails:
                    raise ValueError("bad value 3")
            seen.append(value)

    return app, topic, seen


async def send_range(topic: faust.Topic[int], count: int) -> None:
    for i in range(count):
        await topic.send(value=i, partition=0)


async def test_retry_processes_the_event_once_it_goes_through(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    topic_name = unique("numbers")
    app, topic, seen = fragile_app(unique("retry"), broker_url, topic_name, fails=2,
                                   on_error="retry")
    async with app.running():
        await send_range(topic, 6)
        await eventually(lambda: len(seen) == 6, message="every event, 3 after two retries")
        await app.conductor.checkpoints.checkpoint()
        assert (await committed(app, topic_name, 1))[0] == 6
        assert app.fatal_error is None
    assert seen == [0, 1, 2, 3, 4, 5]


async def test_retry_gives_up_by_stopping_without_committing_the_event(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    topic_name = unique("numbers")
    app, topic, seen = fragile_app(unique("retry-out"), broker_url, topic_name,
                                   on_error="retry")
    async with app.running():
        await send_range(topic, 6)
        with pytest.raises(WorkerStopped, match=rf"crashed on {topic_name}\[0\]@3"):
            await asyncio.wait_for(app.wait_stopped(), 30)
        await app.conductor.checkpoints.checkpoint()
        assert app.conductor.ctx.offsets.committed.get(TP(topic_name, 0), 0) <= 3
    assert seen == [0, 1, 2]


async def test_stop_commits_nothing_past_the_event_and_a_restart_sees_it_again(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    topic_name = unique("numbers")
    name = unique("stop")
    app, topic, seen = fragile_app(name, broker_url, topic_name, on_error="stop")
    async with app.running():
        await send_range(topic, 6)
        with pytest.raises(WorkerStopped, match=rf"{topic_name}\[0\]@3"):
            await asyncio.wait_for(app.wait_stopped(), 30)
    assert seen == [0, 1, 2]
    assert (await committed(app, topic_name, 1))[0] == 3
    # The event is not lost: the next worker processes it (it no longer fails).
    again, _topic, seen_again = fragile_app(name, broker_url, topic_name, fails=0)
    async with again.running():
        await eventually(lambda: len(seen_again) == 3, message="the failed event and the rest")
    assert seen_again == [3, 4, 5]


async def test_supervisor_stop_alone_still_skips_the_event(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    # Faust's behaviour, kept as the default: the failed event counts as processed.
    topic_name = unique("numbers")
    app, topic, _seen = fragile_app(unique("sup-stop"), broker_url, topic_name,
                                    supervisor_strategy="stop")
    async with app.running():
        await send_range(topic, 6)
        with pytest.raises(WorkerStopped):
            await asyncio.wait_for(app.wait_stopped(), 30)
    assert (await committed(app, topic_name, 1))[0] == 4


async def test_dead_letter_keeps_the_input_message_and_the_traceback(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    topic_name = unique("numbers")
    app, topic, seen = fragile_app(unique("dlq"), broker_url, topic_name,
                                   on_error="dead_letter")
    async with app.running():
        await topic.send(key=b"k0", value=0, partition=0, headers=[("trace", b"t-0")])
        await topic.send(key=b"k3", value=3, partition=0, headers=[("trace", b"t-3")])
        await topic.send(key=b"k5", value=5, partition=0)
        await eventually(lambda: len(seen) == 2)
        await app.conductor.checkpoints.checkpoint()
        assert (await committed(app, topic_name, 1))[0] == 3
        [dead] = await read_all(app, app.conf.dead_letter_topic_name, 1)
    assert (dead.key, dead.value) == (b"k3", b"3")
    headers = dict(dead.headers)
    assert headers["trace"] == b"t-3"
    assert headers["fluvial-source"] == f"{topic_name}[0]@1".encode()
    assert headers["fluvial-agent"].endswith(b"fragile")
    error = headers["fluvial-error"].decode()
    assert error.startswith("ValueError('bad value 3')")
    assert "Traceback (most recent call last)" in error
    assert 'raise ValueError("bad value 3")' in error


async def test_app_wide_policy_and_a_bad_policy_name() -> None:
    app = faust.App("policy", broker="memory://policy", processing_error_policy="stop")
    topic = app.topic("numbers", value_type=int, partitions=1)

    @app.agent(topic)
    async def fragile(values: faust.Stream[int]) -> None:
        async for _value in values:
            raise ValueError("always")

    assert fragile.errors.policy == "stop"
    with pytest.raises(ImproperlyConfigured, match="on_error='retyr'"):
        app.agent(topic, on_error="retyr")(fragile.fun)


# -- agents that end, or cannot run ------------------------------------------------------


async def test_an_agent_that_breaks_stops_the_worker_at_once(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    app = make_app(unique("breaks"), broker_url)
    topic_name = unique("numbers")
    topic = app.topic(topic_name, value_type=int, partitions=1)
    seen: list[int] = []

    @app.agent(topic)
    async def quitter(values: faust.Stream[int]) -> None:
        async for value in values:
            if value == 2:
                break
            seen.append(value)

    started = time.monotonic()
    async with app.running():
        await send_range(topic, 4)
        with pytest.raises(WorkerStopped, match="returned while the worker runs"):
            await asyncio.wait_for(app.wait_stopped(), 30)
    assert time.monotonic() - started < 8
    assert seen == [0, 1]
    assert (await committed(app, topic_name, 1))[0] == 2


def test_a_plain_def_agent_is_refused_at_declaration() -> None:
    app = faust.App("plain", broker="memory://plain")
    with pytest.raises(ImproperlyConfigured, match="plain function: declare it `async def`"):

        @app.agent(app.topic("numbers"))
        def process(values: faust.Stream[int]) -> None:
            pass


async def test_an_agent_that_cannot_run_stops_the_worker() -> None:
    app = faust.App("not-async", broker="memory://not-async")

    class Processor:
        """A callable object: not checked at declaration."""

        def __call__(self, values: faust.Stream[int]) -> None:
            return None

    app.agent(app.topic("numbers"), name="processor")(Processor())
    async with app.running():
        with pytest.raises(WorkerStopped, match="must be an async function"):
            await asyncio.wait_for(app.wait_stopped(), 10)


# -- exactly-once: a failed event's effects are not committed either ----------------------


def eos_counting_app(name: str, broker_url: str, topic_name: str, fail: bool,
                     on_error: str = "stop", fails: int = 1 << 30,
                     ) -> tuple[faust.App, faust.Topic[int], Any, list[int]]:
    app = faust.App(name, broker=broker_url, topic_partitions=1, broker_commit_interval=0.2,
                    processing_guarantee="exactly_once", table_standby_replicas=0)
    topic = app.topic(topic_name, value_type=int, partitions=1)
    counts = app.Table("counts", default=int)
    seen: list[int] = []
    failed: list[int] = []

    @app.agent(topic, on_error=on_error)
    async def count(values: faust.Stream[int]) -> None:
        async for value in values:
            counts[str(value)] += 1  # an effect, before the failure
            if fail and value == 3 and len(failed) < fails:
                failed.append(value)
                raise ValueError("bad value 3")
            seen.append(value)

    return app, topic, counts, seen


async def test_exactly_once_stop_aborts_the_failed_events_effects(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    name, topic_name = unique("eos-stop"), unique("numbers")
    app, topic, _counts, seen = eos_counting_app(name, broker_url, topic_name, fail=True)
    started = time.monotonic()
    async with app.running():
        await send_range(topic, 6)
        with pytest.raises(WorkerStopped, match=rf"{topic_name}\[0\]@3"):
            await asyncio.wait_for(app.wait_stopped(), 30)
    assert time.monotonic() - started < 15
    assert seen[:3] == [0, 1, 2] and 3 not in seen
    again, _topic, counts, seen_again = eos_counting_app(name, broker_url, topic_name,
                                                         fail=False)
    async with again.running():
        await eventually(lambda: 5 in seen_again, message="the rest, the failed event first")
        # Each event counted once: the failed attempt's write was never committed.
        assert {key: counts[key] for key in map(str, range(6))} == dict.fromkeys(
            map(str, range(6)), 1)


async def test_exactly_once_retry_starts_from_a_clean_state(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    app, topic, counts, _seen = eos_counting_app(unique("eos-retry"), broker_url,
                                                unique("numbers"), fail=True,
                                                on_error="retry", fails=2)
    def counted() -> dict[str, int]:
        return {key: counts[key] for key in map(str, range(6))}

    async with app.running():
        await send_range(topic, 6)
        # Each event counted once in the end: the failed attempts' writes were aborted.
        await eventually(lambda: app.conductor.rebalance.rejoins == 2 and counted() ==
                         dict.fromkeys(map(str, range(6)), 1), timeout=60,
                         message="every event once, 3 retried twice")
        assert app.fatal_error is None
        await app.conductor.checkpoints.checkpoint()
        assert max(counted().values()) == 1
