"""statsd and Datadog monitors: the lines a UDP listener on loopback receives."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import fluvial as faust
from fluvial.sensors.datadog import DatadogMonitor
from fluvial.sensors.statsd import StatsdMonitor

from .conftest import eventually

LINE = re.compile(r"^(?P<name>[^:|]+):(?P<value>[-0-9.e]+)\|(?P<kind>c|g|ms)"
                  r"(?:\|@(?P<rate>[0-9.]+))?(?:\|#(?P<tags>.*))?$")


@contextmanager
def udp_listener() -> Iterator[tuple[int, Callable[[], list[str]]]]:
    """A UDP socket on loopback; yields its port and a function draining the lines."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    received: list[str] = []

    def lines() -> list[str]:
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return received
            received.extend(data.decode().split("\n"))

    try:
        yield sock.getsockname()[1], lines
    finally:
        sock.close()


def total(lines: list[str], name: str, tags: str | None = None) -> float:
    """Sum of the values of ``name`` (with exactly ``tags``, Datadog) in ``lines``."""
    result = 0.0
    for line in lines:
        match = LINE.match(line)
        assert match, f"not a statsd line: {line!r}"
        if match["name"] == name and (tags is None or match["tags"] == tags):
            result += float(match["value"])
    return result


async def run_app(monitor: StatsdMonitor, unique: Callable[[str], str], events: int) -> str:
    app = faust.App(unique("statsd"), broker=f"memory://{unique('b')}", topic_partitions=2,
                    monitor=monitor, broker_commit_interval=0.1)
    topic = app.topic(unique("orders"), value_type=int, partitions=2)
    seen: list[int] = []

    @app.agent(topic, name="tally")
    async def tally(numbers: faust.Stream[int]) -> None:
        async for n in numbers:
            seen.append(n)

    async with app.running():
        for i in range(events):
            await topic.send(key=str(i).encode(), value=i)
        await eventually(lambda: len(seen) == events, message="all events")
        await eventually(lambda: monitor.events_total == events, message="runs reported")
        await app.conductor.checkpoints.checkpoint()
    monitor.close()
    return topic.get_topic_name()


async def test_statsd_monitor_sends_lines_over_udp(unique: Callable[[str], str]) -> None:
    with udp_listener() as (port, lines):
        monitor = StatsdMonitor(host="127.0.0.1", port=port, prefix="shop")
        topic = await run_app(monitor, unique, 120)
        await asyncio.sleep(0.05)
        got = lines()
    assert total(got, "shop.messages_received") == 120
    assert total(got, f"shop.topic.{topic}.messages_received") == 120
    assert total(got, "shop.events") == 120
    assert total(got, "shop.agent.tally.events") == 120
    assert total(got, "shop.messages_sent") == 120  # the test's own sends, completed
    assert total(got, f"shop.topic.{topic}.messages_sent") == 120
    assert total(got, "shop.rebalances") >= 1
    assert any(line.startswith("shop.events_runtime:") and line.endswith("|ms") for line in got)
    assert any(line.startswith("shop.commit_latency:") for line in got)


async def test_datadog_monitor_tags_its_lines(unique: Callable[[str], str]) -> None:
    with udp_listener() as (port, lines):
        monitor = DatadogMonitor(host="127.0.0.1", port=port, prefix="shop",
                                 tags={"env": "test"})
        topic = await run_app(monitor, unique, 80)
        await asyncio.sleep(0.05)
        got = lines()
    assert total(got, "shop.messages_received", "env:test") == 80
    assert total(got, "shop.messages_received", f"env:test,topic:{topic}") == 80
    assert total(got, "shop.events", "env:test,agent:tally") == 80
    assert all(LINE.match(line)["tags"].startswith("env:test") for line in got)  # type: ignore[index]


def test_a_rate_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError, match="rate must be in"):
        StatsdMonitor(rate=0)


async def test_sampled_counters_say_their_rate(unique: Callable[[str], str]) -> None:
    with udp_listener() as (port, lines):
        monitor = StatsdMonitor(host="127.0.0.1", port=port, prefix="p", rate=0.5)
        for _ in range(200):
            monitor.count("hits")
            monitor.flush()
        await asyncio.sleep(0.05)
        got: list[Any] = lines()
    assert got and all(line == "p.hits:1|c|@0.5" for line in got)
    assert 40 < len(got) < 160  # about half of 200 sent
