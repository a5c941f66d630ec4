"""A worker whose group consumer fails fatally re-joins with a new one instead of dying.

Two workers configured with the same ``consumer_group_instance_id`` (a
misconfiguration) fence each other's static membership: librdkafka declares
the fenced consumer fatally failed. Each fenced worker must log, drop what it
did not commit, re-join (backing off when it happens again) and keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fluvial as faust

from .conftest import eventually

pytestmark = pytest.mark.kafka


def worker(name: str, url: str, topic_name: str, datadir: Path,
           seen: list[int]) -> tuple[faust.App, Any]:
    app = faust.App(name, broker=url, consumer_group_instance_id="same-for-both",
                    broker_commit_interval=0.2, broker_session_timeout=10,
                    broker_heartbeat_interval=1, datadir=str(datadir))
    topic = app.topic(topic_name, value_type=int, partitions=2)

    @app.agent(topic)
    async def record(values: faust.Stream[int]) -> None:
        async for value in values:
            seen.append(value)

    return app, topic


async def test_fenced_static_member_rejoins_instead_of_dying(
        kafka_url: str, unique: Callable[[str], str], tmp_path: Path) -> None:
    name, topic_name = unique("rejoin"), unique("numbers")
    seen_a: list[int] = []
    seen_b: list[int] = []
    app_a, topic = worker(name, kafka_url, topic_name, tmp_path / "a", seen_a)
    app_b, _ = worker(name, kafka_url, topic_name, tmp_path / "b", seen_b)
    async with app_a.running():
        for i in range(50):
            await topic.send(value=i)
        await eventually(lambda: len(set(seen_a)) == 50, message="A processed the first 50")
        async with app_b.running():
            # B takes the instance id: A's consumer is fenced, fails, and A re-joins.
            await eventually(lambda: app_a.conductor.rebalance.rejoins >= 1, timeout=60,
                             message="A re-joined after its consumer failed")
            assert app_a.conductor.error is None and app_b.conductor.error is None
        # B is gone: A (re-joined) owns the partitions again and processes new events.
        for i in range(50, 100):
            await topic.send(value=i)
        await eventually(lambda: set(range(100)) <= set(seen_a) | set(seen_b), timeout=90,
                         message="every event processed after the re-joins")
        assert app_a.conductor.error is None
