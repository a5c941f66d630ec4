"""``/metrics``: scraped from a running worker over HTTP, parsed with prometheus-client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import fluvial as faust
from fluvial.exceptions import ImproperlyConfigured
from fluvial.sensors.prometheus import METRICS, setup_prometheus_sensors

from .conftest import eventually, served, web_app


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample: (name, sorted labels) -> value."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_of_a_running_worker(broker_url: str,
                                           unique: Callable[[str], str]) -> None:
    app = web_app(unique("metrics"), broker_url, topic_partitions=2,
                  broker_commit_interval=0.2)
    topic = app.topic(unique("clicks"), value_type=str, partitions=2)
    counts = app.Table(unique("counts"), default=int, partitions=2)
    seen: list[str] = []

    @app.agent(topic, name="counter")
    async def counter(clicks: faust.Stream[str]) -> None:
        async for click in clicks:
            if click == "boom":
                seen.append(click)
                raise RuntimeError("a bad click")
            counts[click] += 1
            seen.append(click)

    name = topic.get_topic_name()
    async with served(app) as client:
        await eventually(lambda: len(app.conductor.assignment()) == 2, message="assigned")
        for i in range(100):
            await topic.send(key=str(i).encode(), value=f"page{i % 10}")
        await topic.send(key=b"x", value="boom")
        await eventually(lambda: len(seen) == 101, message="101 clicks")
        await app.conductor.checkpoints.checkpoint()
        await eventually(lambda: app.monitor.events_total == 101, message="events counted")
        await client.get("/healthz")
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
    # Every documented metric family is there, with its type.
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    for metric, (kind, _, _) in METRICS.items():
        base = metric[:-len("_total")] if metric.endswith("_total") else metric
        assert families.get(base) == kind, metric
    found = samples(text)
    assert found[("fluvial_messages_received_total", (("topic", name),))] == 101
    assert found[("fluvial_messages_sent_total", (("topic", name),))] == 101
    assert found[("fluvial_events_total", (("agent", "counter"),))] == 101
    assert found[("fluvial_event_processing_seconds_count", (("agent", "counter"),))] == 101
    assert found[("fluvial_event_processing_seconds_bucket",
                  (("agent", "counter"), ("le", "+Inf")))] == 101
    assert found[("fluvial_end_to_end_latency_seconds_count", (("topic", name),))] >= 1
    assert found[("fluvial_agent_crashes_total", (("agent", "counter"),))] == 1
    # Not repartitioned: each of the 2 partitions holds its own 10 pages.
    assert found[("fluvial_table_keys", (("table", counts.name),))] == 20
    assert found[("fluvial_changelog_records_total", (("table", counts.name),))] >= 20
    assert found[("fluvial_assigned_partitions", ())] == 2
    assert found[("fluvial_rebalances_total", ())] >= 1
    assert found[("fluvial_checkpoint_seconds_count", ())] >= 1
    assert found[("fluvial_decode_errors_total", ())] == 0
    lag = {labels: v for (metric, labels), v in found.items()
           if metric == "fluvial_consumer_lag"}
    assert set(lag) == {(("partition", str(p)), ("topic", name)) for p in range(2)}
    assert all(v == 0 for v in lag.values())  # everything read
    committed = sum(v for (metric, _), v in found.items()
                    if metric == "fluvial_committed_offset" and _[1] == ("topic", name))
    assert committed == 101
    assert found[("fluvial_web_requests_total", (("method", "GET"), ("status", "200")))] >= 1


async def test_consumer_lag_counts_what_is_not_read(broker_url: str,
                                                    unique: Callable[[str], str]) -> None:
    # A buffer of one event: with the agent stuck, the partition is paused and
    # what is sent next stays in the broker.
    app = web_app(unique("lagging"), broker_url, topic_partitions=1, stream_buffer_maxsize=1)
    topic = app.topic(unique("slow"), value_type=int, partitions=1)
    release = asyncio.Event()
    taken: list[int] = []

    @app.agent(topic)
    async def slow(numbers: faust.Stream[int]) -> None:
        async for n in numbers:
            taken.append(n)
            await release.wait()

    async def lag(client: Any) -> float:
        found = samples((await client.get("/metrics")).text)
        return found.get(("fluvial_consumer_lag",
                          (("partition", "0"), ("topic", topic.get_topic_name()))), -1)

    async with served(app) as client:
        await eventually(lambda: len(app.conductor.assignment()) == 1, message="assigned")
        await topic.send(value=0)
        await eventually(lambda: taken == [0], message="the agent holds an event")
        await topic.send(value=1)  # fills the buffer
        await eventually(lambda: topic.get_topic_name() in app.conductor.paused_topics(),
                         message="the partition paused")
        for i in range(2, 32):
            await topic.send(value=i)
        last = -1.0
        for _ in range(100):
            last = await lag(client)
            if last == 30:
                break
            await asyncio.sleep(0.05)
        assert last == 30
        release.set()
        await eventually(lambda: len(taken) == 32, message="all taken")
        for _ in range(100):
            last = await lag(client)
            if last == 0:
                break
            await asyncio.sleep(0.05)
        assert last == 0


async def test_metrics_can_be_turned_off(unique: Callable[[str], str]) -> None:
    app = web_app(unique("nometrics"), f"memory://{unique('b')}", web_metrics_enabled=False)
    async with served(app) as client:
        response = await client.get("/metrics")
    assert response.status_code == 404


async def test_decode_errors_and_dead_letters_are_counted(unique: Callable[[str], str]) -> None:
    app = web_app(unique("dlq"), f"memory://{unique('b')}", topic_partitions=1)
    topic = app.topic(unique("numbers"), value_type=int, partitions=1,
                      on_decode_error="dead_letter")
    seen: list[int] = []

    @app.agent(topic)
    async def numbers(stream: faust.Stream[int]) -> None:
        async for n in stream:
            seen.append(n)

    async with served(app) as client:
        producer = app.producer
        for value in (b"1", b"not json", b"2", b"{bad"):
            producer.send_soon(topic.get_topic_name(), None, value)
        await producer.flush()
        await eventually(lambda: seen == [1, 2], message="the good numbers")
        found = samples((await client.get("/metrics")).text)
        stats = (await client.get("/stats/")).json()
    assert found[("fluvial_decode_errors_total", ())] == 2
    assert found[("fluvial_dead_lettered_total", ())] == 2
    assert stats["decode_errors"] == 2 and stats["dead_lettered"] == 2


async def test_setup_prometheus_sensors_as_faust_streaming(
    unique: Callable[[str], str]
) -> None:
    app = web_app(unique("fs"), f"memory://{unique('b')}", topic_partitions=1)
    topic = app.topic(unique("numbers"), value_type=int, partitions=1)
    registry = CollectorRegistry()
    setup_prometheus_sensors(app, pattern="/prom", registry=registry, name_prefix="shop")
    seen: list[int] = []

    @app.agent(topic, name="numbers")
    async def numbers(stream: faust.Stream[int]) -> None:
        async for n in stream:
            seen.append(n)

    async with served(app) as client:
        for i in range(7):
            await topic.send(value=i)
        await eventually(lambda: len(seen) == 7, message="7 numbers")
        await eventually(lambda: app.monitor.events_total == 7, message="counted")
        served_text = (await client.get("/prom")).text
    found = samples(served_text)
    assert found[("shop_events_total", (("agent", "numbers"),))] == 7
    assert not any(name.startswith("fluvial_") for name, _ in found)
    in_registry = samples(generate_latest(registry).decode())
    assert in_registry[("shop_events_total", (("agent", "numbers"),))] == 7


def test_a_bad_name_prefix_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="name_prefix"):
        setup_prometheus_sensors(faust.App("x", broker="memory://"), name_prefix="a-b")


async def test_events_whose_processing_failed_count_as_dead_lettered(
    unique: Callable[[str], str]
) -> None:
    app = web_app(unique("dlq-proc"), f"memory://{unique('b')}", topic_partitions=1,
                  processing_error_policy="dead_letter")
    topic = app.topic(unique("numbers"), value_type=int, partitions=1)
    seen: list[int] = []

    @app.agent(topic, name="picky")
    async def picky(stream: faust.Stream[int]) -> None:
        async for n in stream:
            seen.append(n)
            if n % 2:
                raise ValueError(f"odd: {n}")

    async with served(app) as client:
        for i in range(6):
            await topic.send(value=i)
        await eventually(lambda: len(seen) == 6, message="6 numbers")
        await eventually(lambda: app.conductor.dead_lettered == 3, message="3 dead-lettered")
        found = samples((await client.get("/metrics")).text)
    assert found[("fluvial_dead_lettered_total", ())] == 3
    assert found[("fluvial_decode_errors_total", ())] == 0


async def test_metrics_and_stats_from_a_web_server_in_its_own_thread(
    unique: Callable[[str], str]
) -> None:
    # The figures are gathered on the worker's loop (the lag asks its consumer).
    app = web_app(unique("threaded"), f"memory://{unique('b')}", topic_partitions=2,
                  web_in_thread=True)
    topic = app.topic(unique("numbers"), value_type=int, partitions=2)
    seen: list[int] = []

    @app.agent(topic)
    async def numbers(stream: faust.Stream[int]) -> None:
        async for n in stream:
            seen.append(n)

    async with served(app) as client:
        await eventually(lambda: len(app.conductor.assignment()) == 2, message="assigned")
        for i in range(10):
            await topic.send(key=str(i).encode(), value=i)
        await eventually(lambda: len(seen) == 10, message="10 numbers")
        found = samples((await client.get("/metrics")).text)
        stats = (await client.get("/stats/")).json()
    name = topic.get_topic_name()
    assert found[("fluvial_messages_received_total", (("topic", name),))] == 10
    assert {labels for metric, labels in found if metric == "fluvial_consumer_lag"} == {
        (("partition", str(p)), ("topic", name)) for p in range(2)}
    assert set(stats["lag"]) == {f"{name}[0]", f"{name}[1]"}
