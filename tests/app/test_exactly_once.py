"""Exactly-once (``processing_guarantee='exactly_once'``): transactions, fencing, recovery."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fluvial as faust
from fluvial.types import TP

from .conftest import eventually


async def read_committed(app: faust.App, topic: str, partitions: int) -> list[tuple[Any, Any]]:
    """Every committed record of ``topic`` as (key, value) bytes, read like a downstream
    consumer with ``isolation.level=read_committed``."""
    consumer = app.transport.create_consumer(None, isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TP(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        consumer.assign(dict.fromkeys(tps, 0))
        records: list[tuple[Any, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            for m in await consumer.getmany(10_000, 0.2):
                records.append((m.key, m.value))
            positions = await consumer.position(tps)
            if all((positions[tp] or 0) >= ends[tp] for tp in tps):
                return records
            assert loop.time() < deadline, f"reading {topic} did not reach {ends}"
    finally:
        await consumer.stop()


def build(name: str, source: str, sink: str, broker_url: str, **settings: Any
          ) -> tuple[faust.App, Any, Any, Any, list[int]]:
    app = faust.App(name, broker=broker_url, topic_partitions=2, broker_commit_interval=0.2,
                    processing_guarantee="exactly_once", **settings)
    src = app.topic(source, key_type=str, value_type=int, partitions=2)
    out = app.topic(sink, key_type=str, value_type=int, partitions=2)
    counts = app.Table("counts", default=int)
    seen: list[int] = []

    @app.agent(src)
    async def count(stream: faust.Stream[int]) -> None:
        async for event in stream.events():
            counts[event.key] += 1
            await out.send(key=event.key, value=event.value)
            seen.append(event.value)

    return app, src, out, counts, seen


async def test_pipeline_output_and_table_exact(broker_url: str,
                                               unique: Callable[[str], str]) -> None:
    name, source, sink = unique("eos"), unique("eos-in"), unique("eos-out")
    app, src, out, counts, seen = build(name, source, sink, broker_url)
    inputs = [(f"k{i % 7}", i) for i in range(500)]
    expected = Counter(k for k, _ in inputs)
    async with app.running():
        for key, value in inputs:
            await src.send(key=key, value=value)
        await eventually(lambda: dict(counts.items()) == dict(expected), message="table exact")
        await app.conductor.checkpoint()
        records = await read_committed(app, sink, 2)
        assert sorted(int(v) for _, v in records) == [v for _, v in inputs]
        assert app.conductor.transactions is not None
        assert app.conductor.transactions.fenced == 0
    # A new worker restores exactly the committed table and processes nothing again.
    app2, src2, _, counts2, seen2 = build(name, source, sink, broker_url)
    async with app2.running():
        await eventually(lambda: dict(counts2.items()) == dict(expected),
                         message="table restored")
        assert seen2 == []
        records = await read_committed(app2, sink, 2)
        assert len(records) == len(inputs)
