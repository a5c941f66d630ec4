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
from fluvial.types import TP, Message

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
                # Fetched before the position was read, maybe not yet returned.
                while batch := await consumer.getmany(10_000, 0):
                    records += [(m.key, m.value) for m in batch]
                return records
            assert loop.time() < deadline, f"reading {topic} did not reach {ends}"
    finally:
        await consumer.stop()


async def feed(broker_url: str, topic: str, inputs: list[tuple[str, int]]) -> None:
    """Send ``inputs`` with a plain producer of its own (not in any worker's transaction)."""
    feeder = faust.App("feeder", broker=broker_url)
    target = feeder.topic(topic, key_type=str, value_type=int, partitions=2)
    try:
        for key, value in inputs:
            await target.send(key=key, value=value)
    finally:
        await feeder.close()


async def read_until(app: faust.App, topic: str, n: int) -> list[tuple[Any, Any]]:
    """The committed records of ``topic`` once there are at least ``n`` (or after 60 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        records = await read_committed(app, topic, 2)
        if len(records) >= n or loop.time() > deadline:
            return records
        await asyncio.sleep(0.2)


def merged_counts(*tables: Any) -> dict[str, int]:
    """The counts of every table partition the workers hold, merged."""
    merged: Counter[str] = Counter()
    for table in tables:
        for partition in table.partitions_held():
            merged.update(dict((table.partition_data(partition) or {}).items()))
    return dict(merged)


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
    app, src, _, counts, _ = build(name, source, sink, broker_url)
    inputs = [(f"k{i % 7}", i) for i in range(500)]
    expected = Counter(k for k, _ in inputs)
    async with app.running():
        for key, value in inputs:
            await src.send(key=key, value=value)
        await eventually(lambda: dict(counts.items()) == dict(expected), message="table exact")
        await app.conductor.checkpoints.checkpoint()
        records = await read_committed(app, sink, 2)
        assert sorted(int(v) for _, v in records) == [v for _, v in inputs]
        assert app.conductor.checkpoints.transactions is not None
        assert app.conductor.checkpoints.transactions.fenced == 0
    # A new worker restores exactly the committed table and processes nothing again.
    app2, _, _, counts2, seen2 = build(name, source, sink, broker_url)
    async with app2.running():
        await eventually(lambda: dict(counts2.items()) == dict(expected),
                         message="table restored")
        assert seen2 == []
        records = await read_committed(app2, sink, 2)
        assert len(records) == len(inputs)


@pytest.mark.kafka
async def test_aborted_transaction_in_changelog_is_not_restored(
    kafka_bootstrap: str, kafka_url: str, unique: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Aborted records and markers take offsets a read_committed reader never sees;
    recovery restores exactly the committed values and ends by position, not by waiting."""
    from confluent_kafka import Producer

    app, _, _, counts, _ = build(unique("eos-abort"), unique("in"), unique("out"), kafka_url)
    await app.transport.start()
    await app.declare_topics([counts.changelog_topic])
    changelog = counts.changelog_topic_name
    producer = Producer({"bootstrap.servers": kafka_bootstrap,
                         "transactional.id": unique("writer")})
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, producer.init_transactions, 30)

    def transaction(records: dict[str, int], *, commit: bool) -> None:
        producer.begin_transaction()
        for key, value in records.items():
            producer.produce(changelog, json.dumps(value).encode(), counts.encode_key(key),
                             partition=0)
        producer.flush()
        (producer.commit_transaction if commit else producer.abort_transaction)(30)

    await loop.run_in_executor(None, lambda: transaction({"a": 1, "b": 2}, commit=True))
    await loop.run_in_executor(None, lambda: transaction({"a": 99, "c": 5}, commit=False))
    await loop.run_in_executor(None, lambda: transaction({"b": 3}, commit=True))
    # The changelog ends with an aborted transaction and its marker.
    await loop.run_in_executor(None, lambda: transaction({"a": 7, "d": 1}, commit=False))

    with caplog.at_level(logging.WARNING, logger="fluvial.tables.recovery"):
        async with app.running():
            await eventually(lambda: not app.conductor.recovering()
                             and app.conductor.assignment(), message="recovered")
            await eventually(lambda: dict(counts.items()) == {"a": 1, "b": 3},
                             message="committed values restored")
            assert app.tables.last_restored == 3
    assert "end before their high-water mark" not in caplog.text


@pytest.mark.kafka
async def test_recovery_waits_for_a_transaction_left_open(
    kafka_bootstrap: str, kafka_url: str, unique: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker killed mid-transaction leaves it open; its partition's next owner then
    committed a newer value. read_committed shows nothing past the open transaction,
    so a recovery that read to the last stable offset would start from a stale table:
    it must wait until the open transaction ends, then read what was committed."""
    from confluent_kafka import Producer

    app, _, _, counts, _ = build(unique("eos-open"), unique("in"), unique("out"), kafka_url)
    await app.transport.start()
    await app.declare_topics([counts.changelog_topic])
    changelog = counts.changelog_topic_name
    loop = asyncio.get_running_loop()

    def producer(name: str) -> Producer:
        p = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": unique(name),
                      "transaction.timeout.ms": 60_000})
        p.init_transactions(30)
        p.begin_transaction()
        return p

    def write(p: Producer, key: str, value: int) -> None:
        p.produce(changelog, json.dumps(value).encode(), counts.encode_key(key), partition=0)
        p.flush()

    killed = await loop.run_in_executor(None, producer, "killed")
    await loop.run_in_executor(None, write, killed, "a", 1)      # left open
    successor = await loop.run_in_executor(None, producer, "successor")
    await loop.run_in_executor(None, write, successor, "a", 8)
    await loop.run_in_executor(None, successor.commit_transaction, 30)
    assert await app.transport.open_transactions([TP(changelog, 0)]) == {TP(changelog, 0)}

    with caplog.at_level(logging.WARNING, logger="fluvial.tables.recovery"):
        async with app.running():
            await eventually(lambda: app.conductor.assignment(), message="assigned")
            await asyncio.sleep(2.0)
            assert 0 in app.conductor.recovering(), "recovered past an open transaction"
            assert "a" not in counts
            await loop.run_in_executor(None, killed.abort_transaction, 30)
            await eventually(lambda: not app.conductor.recovering(), message="recovered")
            assert dict(counts.items()) == {"a": 8}
    assert "waits for transactions still open" in caplog.text
    assert await app.transport.open_transactions([TP(changelog, 0)]) == set()


async def test_fenced_worker_rejoins_and_nothing_duplicates(
    broker_url: str, unique: Callable[[str], str], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two workers with one transactional identity (same app, same data directory): the
    second fences the first, whose commit fails; the first re-joins instead of crashing."""
    name, source, sink = unique("eos-fence"), unique("in"), unique("out")
    datadir = str(tmp_path / "shared")
    app1, _, _, counts1, _ = build(name, source, sink, broker_url, datadir=datadir)
    app2, _, _, counts2, _ = build(name, source, sink, broker_url, datadir=datadir)
    first = [(f"k{i % 5}", i) for i in range(200)]
    second = [(f"k{i % 5}", i) for i in range(200, 400)]
    expected = Counter(k for k, _ in first + second)

    def total() -> dict[str, int]:
        return merged_counts(counts1, counts2)

    with caplog.at_level(logging.WARNING, logger="fluvial.runtime.conductor"):
        async with app1.running():
            await feed(broker_url, source, first)
            await eventually(lambda: sum(counts1.values()) == len(first), message="first half")
            async with app2.running():
                assert app1.conductor.checkpoints.transactions is not None
                t1 = app1.conductor.checkpoints.transactions
                # The first worker learns it is fenced when its next transaction with
                # records reaches the broker (an empty one commits locally).
                await feed(broker_url, source, second)
                await eventually(lambda: t1.fenced >= 1, message="first worker fenced")
                await eventually(lambda: total() == dict(expected), timeout=60,
                                 message="both halves counted exactly once")
                records = await read_until(app2, sink, 400)
                assert sorted(int(v) for _, v in records) == list(range(400))
                assert app1.fatal_error is None and app2.fatal_error is None
                assert t1.fenced >= 1
    assert "was fenced" in caplog.text


@pytest.mark.kafka
@pytest.mark.parametrize(("crash_at", "crash_on"),
                         [("offsets", "2"), ("commit", "1"), ("after_commit", "1")])
async def test_crash_mid_transaction_no_duplicate_no_gap(
    kafka_bootstrap: str, kafka_url: str, tmp_path: Path, crash_at: str, crash_on: str
) -> None:
    """A worker killed at a step of its transaction commit, then restarted: the output
    (read_committed) holds every input exactly once and the table is exact."""
    import signal
    import uuid

    from .test_crash_recovery import produce, spawn

    suffix = uuid.uuid4().hex[:8]
    env = {"FLUVIAL_BROKER": kafka_url, "TEST_APP_ID": f"eos-crash-{suffix}",
           "TEST_TOPIC": f"eos-crash-in-{suffix}", "TEST_OUT": f"eos-crash-out-{suffix}",
           "FLUVIAL_DATADIR": str(tmp_path / "data"),
           "FLUVIAL_CONSUMER_GROUP_INSTANCE_ID": "eos-crash-worker-1"}
    expected = produce(kafka_bootstrap, env["TEST_TOPIC"])
    n = sum(expected.values())

    def start(**extra: str) -> Any:
        return spawn({**env, **extra}, tmp_path, app_module="tests.app.eos_crash_app:app")

    crashed = start(CRASH_AT=crash_at, CRASH_ON=crash_on)
    try:
        _, err = crashed.communicate(timeout=120)
    finally:
        if crashed.poll() is None:
            crashed.kill()
    assert crashed.returncode == 9, err[-2000:]

    dump = tmp_path / "table.json"
    survivor = start(DUMP=str(dump))
    try:
        counts: dict[str, int] = {}
        for _ in range(600):
            await asyncio.sleep(0.1)
            if survivor.poll() is not None:
                raise AssertionError(survivor.communicate()[1][-3000:])
            if dump.exists():
                counts = by_account(json.loads(dump.read_text()))
                if sum(counts.values()) >= n:
                    break
        await asyncio.sleep(1.0)  # a few more checkpoints: would-be duplicates show up
        counts = by_account(json.loads(dump.read_text()))
        survivor.send_signal(signal.SIGTERM)
        _, err = survivor.communicate(timeout=60)
    finally:
        if survivor.poll() is None:
            survivor.kill()
    assert survivor.returncode == 0, err[-3000:]
    assert counts == dict(expected)

    reader = faust.App("reader", broker=kafka_url)
    try:
        await reader.transport.start()
        records = await read_committed(reader, env["TEST_OUT"], 2)
    finally:
        await reader.close()
    outputs = Counter(value for _, value in records)
    assert len(records) == n, f"{len(records) - n:+d} records; duplicates: " + str(
        [k for k, c in outputs.items() if c > 1][:5])
    assert set(outputs) == {f"o{i}".encode() for i in range(n)}


def by_account(dump: dict[str, int]) -> dict[str, int]:
    """Table keys are ``account|partition``: the count per account."""
    totals: Counter[str] = Counter()
    for key, count in dump.items():
        totals[key.split("|")[0]] += count
    return dict(totals)


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
async def test_worker_dropped_from_the_group_commits_nothing_of_what_it_held(
    guarantee: str, unique: Callable[[str], str], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker frozen past its session timeout (here: its membership expired while an
    agent holds an event it has counted and sent) loses its partitions to another
    worker at once. Nothing of what it did since its last checkpoint may count: no
    checkpoint runs for lost partitions, the open transaction is aborted (exactly-once)
    or the table writes are discarded (at-least-once), and it re-joins."""
    broker_url = f"memory://lost-{unique('b')}"
    name, source, sink = unique("lost"), unique("in"), unique("out")
    frozen = asyncio.Event()
    thaw = asyncio.Event()

    def worker(tag: str) -> tuple[faust.App, Any]:
        app = faust.App(name, broker=broker_url, topic_partitions=2,
                        broker_commit_interval=0.2, processing_guarantee=guarantee,
                        datadir=str(tmp_path / tag))
        src = app.topic(source, key_type=str, value_type=int, partitions=2)
        out = app.topic(sink, key_type=str, value_type=int, partitions=2)
        counts = app.Table("counts", default=int)

        @app.agent(src)
        async def count(stream: faust.Stream[int]) -> None:
            async for event in stream.events():
                counts[event.key] += 1
                await out.send(key=event.key, value=event.value)
                if tag == "a" and event.value == 150 and not frozen.is_set():
                    frozen.set()
                    await thaw.wait()  # a frozen process: it still holds the event

        return app, counts

    app_a, counts_a = worker("a")
    app_b, counts_b = worker("b")
    inputs = [(f"k{i % 5}", i) for i in range(300)]
    expected = Counter(k for k, _ in inputs)

    def total() -> dict[str, int]:
        return merged_counts(counts_a, counts_b)

    with caplog.at_level(logging.WARNING, logger="fluvial.runtime.conductor"):
        async with app_a.running():
            await feed(broker_url, source, inputs[:100])
            await eventually(lambda: sum(counts_a.values()) == 100, message="first 100")
            await feed(broker_url, source, inputs[100:])
            await asyncio.wait_for(frozen.wait(), 30)
            consumer = app_a.group_consumer
            assert consumer is not None
            consumer.expire_session()  # type: ignore[attr-defined]
            async with app_b.running():
                await eventually(lambda: app_a.conductor.rebalance.rejoins >= 1,
                                 message="the dropped worker re-joined")
                thaw.set()
                await eventually(lambda: total() == dict(expected), timeout=30,
                                 message="every event counted exactly once")
                if guarantee == "exactly_once":
                    records = await read_until(app_b, sink, len(inputs))
                    assert sorted(int(v) for _, v in records) == [v for _, v in inputs]
                assert app_a.fatal_error is None and app_b.fatal_error is None
    # Both stopped cleanly too (a stop step that hangs is reported as fatal).
    assert app_a.fatal_error is None and app_b.fatal_error is None
    assert "Partitions lost" in caplog.text


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
async def test_offsets_of_partitions_not_assigned_are_never_committed(
    guarantee: str, unique: Callable[[str], str], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A message of a partition this worker does not own (one a consumer delivered after
    the partition's revoke) may get processed, but its offset is the owner's to commit:
    committing it could move the owner past events it never saw."""
    broker_url = f"memory://stray-{unique('b')}"
    name, source = unique("stray"), unique("in")
    seen: dict[str, list[int]] = {"a": [], "b": []}

    def worker(tag: str) -> tuple[faust.App, Any]:
        app = faust.App(name, broker=broker_url, broker_commit_interval=0.1,
                        processing_guarantee=guarantee, datadir=str(tmp_path / tag))
        src = app.topic(source, value_type=int, partitions=2)

        @app.agent(src)
        async def record(values: faust.Stream[int]) -> None:
            async for value in values:
                seen[tag].append(value)

        return app, record

    app_a, _ = worker("a")
    app_b, _ = worker("b")
    async with app_a.running(), app_b.running():
        await eventually(lambda: len(app_a.conductor.assignment()) == 1
                         and len(app_b.conductor.assignment()) == 1, message="one each")
        (theirs,) = app_b.conductor.assignment()
        feeder = faust.App("feeder", broker=broker_url)  # not in any transaction
        try:
            await feeder.topic(source, value_type=int, partitions=2).send(
                value=1, partition=theirs.partition)
        finally:
            await feeder.close()
        await eventually(lambda: seen["b"] == [1], message="B processed its event")
        await app_b.conductor.checkpoints.checkpoint()
        consumer = app_a.group_consumer
        assert consumer is not None
        before = (await consumer.committed([theirs]))[theirs]
        assert before == 1
        # A late message of B's partition reaches A: processed there, never committed.
        stray = Message(theirs.topic, theirs.partition, 7, None, b"99", 0.0)
        with caplog.at_level(logging.WARNING, logger="fluvial.runtime.conductor"):
            app_a.conductor.dispatch([stray])
            await eventually(lambda: seen["a"] == [99], message="A processed the stray one")
            await app_a.conductor.checkpoints.checkpoint()
        assert (await consumer.committed([theirs]))[theirs] == before
        assert (f"Not committing {theirs.topic}[{theirs.partition}] up to offset 8"
                in caplog.text)
