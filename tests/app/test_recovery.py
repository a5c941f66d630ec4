"""Recovery in the background: current partitions never wait, restored ones resume."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from typing import Any

import pytest

import fluvial as faust
from fluvial.tables import recovery
from fluvial.tables.recovery import RecoveryProgress
from fluvial.types import TP, Message

from .conftest import eventually


async def fill_changelog(app: faust.App, table: Any, partition: int, key: str, n: int) -> None:
    """``n`` changelog records of ``key`` in ``partition`` (values 1..n): the last one wins."""
    await app.declare_topics([table.changelog_topic])
    producer = app.transport.create_producer()
    await producer.start()
    try:
        encoded = table.encode_key(key)
        for i in range(1, n + 1):
            producer.send_soon(table.changelog_topic_name, encoded, str(i).encode(),
                               partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


def build(name: str, topic_name: str, broker_url: str, gate: asyncio.Event
          ) -> tuple[faust.App, Any, Any, list[tuple[int, str, int]]]:
    app = faust.App(name, broker=broker_url, topic_partitions=2, broker_commit_interval=0.2)
    topic = app.topic(topic_name, key_type=str, value_type=int, partitions=2)
    seen: list[tuple[int, str, int]] = []

    async def recovered() -> None:
        # Holds the end of partition 1's recovery until the test opens the gate.
        await gate.wait()

    totals = app.Table("totals", default=int, on_recover=recovered)

    @app.agent(topic)
    async def add(stream: faust.Stream[int]) -> None:
        async for event in stream.events():
            totals[event.key] += event.value
            seen.append((event.message.partition, event.key, totals[event.key]))

    return app, topic, totals, seen


async def test_recovering_partition_does_not_hold_up_a_current_one(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    gate = asyncio.Event()
    app, topic, totals, seen = build(unique("recovery"), unique("numbers"), broker_url, gate)
    await app.transport.start()
    await fill_changelog(app, totals, partition=1, key="b", n=500)
    await app.declare_topics([topic])
    # Partition 1's event is sent first: it must still wait for its table.
    await topic.send(key="b", value=1, partition=1)
    await topic.send(key="a", value=1, partition=0)

    async with app.running():
        await eventually(lambda: (0, "a", 1) in seen, message="partition 0 processed")
        assert app.conductor.recovering() == {1}
        assert all(partition == 0 for partition, _, _ in seen)
        store = totals.partition_data(1)
        assert store is not None and store.get("b") == 500
        gate.set()
        await eventually(lambda: len(seen) == 2, message="partition 1 processed once restored")
        # The agent saw the restored value, never the default.
        assert seen[1] == (1, "b", 501)
        assert app.conductor.recovering() == set()
        assert app.tables.last_restored == 500


async def test_revoke_during_recovery_cancels_it(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    """Revoking a partition mid-recovery stops its replay; the others finish."""
    app = faust.App(unique("revoke"), broker=broker_url, topic_partitions=2)
    topic = app.topic(unique("numbers"), key_type=str, value_type=int, partitions=2)
    applied: dict[int, int] = {0: 0, 1: 0}
    after_revoke: list[int] = []
    revoked = asyncio.Event()
    restored: list[set[int]] = []
    tasks: list[asyncio.Task[None]] = []
    tp1 = TP(topic.get_topic_name(), 1)

    async def revoke() -> None:
        await app.tables.on_partitions_revoked({tp1})
        revoked.set()

    def on_event(message: Message) -> None:
        if revoked.is_set():
            after_revoke.append(message.partition)
        applied[message.partition] += 1
        if message.partition == 1 and applied[1] == 1:
            # Comes in while the first batch of partition 1 is applied.
            tasks.append(asyncio.ensure_future(revoke()))

    totals = app.Table("totals", default=int, on_changelog_event=on_event)
    await app.transport.start()
    n = recovery.RESTORE_BATCH * 2
    await fill_changelog(app, totals, partition=0, key="a", n=1000)
    await fill_changelog(app, totals, partition=1, key="b", n=n)

    async def on_restored(partitions: set[int]) -> None:
        restored.append(partitions)

    try:
        recovering = await app.tables.on_partitions_assigned(
            {TP(topic.get_topic_name(), 0), tp1}, on_restored=on_restored)
        assert recovering == {0, 1}
        await eventually(lambda: revoked.is_set() and not app.tables.recovering,
                         message="recovery over")
        assert restored == [{0}]
        store = totals.partition_data(0)
        assert store is not None and store.get("a") == 1000
        assert totals.partition_data(1) is None  # dropped with the revoke
        assert 0 < applied[1] < n
        assert 1 not in after_revoke
        await asyncio.gather(*tasks)
    finally:
        await app.tables.stop_recovery()
        await app.close()


def test_progress_is_logged(caplog: pytest.LogCaptureFixture,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery, "LOG_EVERY_S", 0.0)
    progress = RecoveryProgress(terminal=False)
    progress.add(1000)
    with caplog.at_level(logging.INFO, logger="fluvial.tables.recovery"):
        progress.advance(400)
        progress.finish(partitions=2)
    text = caplog.text
    assert "400 of 1000 changelog records restored, 600 left" in text
    assert "records/s, ETA" in text
    assert "400 changelog records restored into 2 table partitions" in text


def test_progress_bar_on_a_terminal() -> None:
    from rich.console import Console

    out = io.StringIO()
    progress = RecoveryProgress(console=Console(file=out, force_terminal=True, width=100))
    progress.add(1000)
    progress.advance(1000)
    progress.finish(partitions=1)
    assert "recovering tables" in out.getvalue()
    assert "1000/1000" in out.getvalue()


def test_no_progress_bar_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    progress = RecoveryProgress()  # stderr is captured: not a terminal
    progress.add(10)
    progress.advance(10)
    progress.finish(partitions=1)
    assert capsys.readouterr().err == ""


async def test_logged_during_a_worker_run(
    caplog: pytest.LogCaptureFixture, unique: Callable[[str], str]
) -> None:
    gate = asyncio.Event()
    gate.set()
    app, topic, totals, seen = build(unique("logged"), unique("numbers"),
                                     f"memory://{unique('b')}", gate)
    await app.transport.start()
    await fill_changelog(app, totals, partition=0, key="a", n=300)
    with caplog.at_level(logging.INFO):
        async with app.running():
            await topic.send(key="a", value=1, partition=0)
            await eventually(lambda: seen == [(0, "a", 301)], message="restored then processed")
    assert "Recovering 300 changelog records for 1 table partitions" in caplog.text
    assert "300 changelog records restored into 1 table partitions" in caplog.text


# -- runs: what the restore consumer hands over instead of a Message per record -------

def test_kafka_runs_split_by_partition_and_topic_and_set_errors_aside() -> None:
    from confluent_kafka import KafkaError
    from confluent_kafka import Message as Raw

    def raw(topic: str, partition: int, offset: int, value: bytes | None) -> Raw:
        return Raw(topic=topic, partition=partition, offset=offset, key=b'"k"', value=value,
                   timestamp=(1, 2500), headers=[("h", b"1")])

    error = KafkaError(KafkaError._MSG_TIMED_OUT)
    raws = [raw("a", 0, 5, b"1"), raw("a", 0, 6, None), raw("b", 0, 9, b"2"),
            Raw(topic="a", partition=0, error=error), raw("a", 0, 7, b"3"),
            raw("a", 1, 1, b"4")]
    runs, errors = recovery.kafka_runs(raws)
    assert errors == [error]
    assert [(r.topic, r.partition, r.first_offset, r.last_offset, r.keys, r.values)
            for r in runs] == [("a", 0, 5, 6, [b'"k"', b'"k"'], [b"1", None]),
                               ("b", 0, 9, 9, [b'"k"'], [b"2"]),
                               ("a", 0, 7, 7, [b'"k"'], [b"3"]),
                               ("a", 1, 1, 1, [b'"k"'], [b"4"])]
    message = runs[0].messages()[1]
    assert (message.topic, message.partition, message.offset, message.key, message.value,
            message.timestamp, message.headers) == ("a", 0, 6, b'"k"', None, 2.5,
                                                    [("h", b"1")])


def test_run_within_cuts_at_offsets_with_gaps() -> None:
    messages = [Message("t", 0, offset, b'"k"', b"1", 0.0) for offset in (3, 4, 8, 9, 12)]
    (run,) = recovery.message_runs(messages)
    assert run.within(0, 100) is run
    cut = run.within(4, 12)
    assert cut is not None and cut.offsets() == [4, 8, 9] and len(cut.keys) == 3
    assert (cut.first_offset, cut.last_offset) == (4, 9)
    assert run.within(5, 8) is None
    assert run.within(13, 20) is None


def test_last_record_of_a_key_wins_under_two_encodings_of_it() -> None:
    """Only the last record of each key is applied, in the order of those last records:
    a key written under two JSON encodings (another encoder's spacing) ends with the
    value of its very last record."""
    from fluvial.tables.store import MemoryStore

    def decode(data: bytes | None) -> Any:
        import json

        return None if data is None else json.loads(data)

    plain, spaced = b'"a"', b' "a"'
    for keys, values, expected in [
        ([plain, spaced, plain], [b"1", b"2", b"3"], {"a": 3}),
        ([plain, plain, spaced], [b"1", b"3", b"2"], {"a": 2}),
        ([plain, spaced, b'"b"', plain], [b"1", b"2", b"5", None], {"b": 5}),
    ]:
        store = MemoryStore()
        store.apply_records(keys, values, 10, decode, decode)
        assert dict(store) == expected and store.changelog_offset == 10


@pytest.mark.kafka
async def test_tombstones_and_callbacks_restore_from_kafka(
    kafka_url: str, unique: Callable[[str], str]
) -> None:
    """Through the restore consumer's runs: deletes are applied, and a table with an
    on_changelog_event callback still hears every record as a Message."""
    app = faust.App(unique("runs"), broker=kafka_url, topic_partitions=2)
    topic = app.topic(unique("numbers"), key_type=str, value_type=int, partitions=2)
    heard: list[tuple[int, int, bytes | None]] = []
    plain = app.Table("plain", default=int)
    called = app.Table("called", default=int,
                       on_changelog_event=lambda m: heard.append((m.partition, m.offset,
                                                                  m.value)))
    await app.transport.start()
    try:
        for table in (plain, called):
            await app.declare_topics([table.changelog_topic])
            producer = app.transport.create_producer()
            await producer.start()
            for i in range(3000):
                key = table.encode_key(f"k{i % 30}")
                value = None if i >= 2990 else str(i).encode()  # the last 10 keys deleted
                producer.send_soon(table.changelog_topic_name, key, value, partition=i % 2)
            await producer.flush()
            await producer.stop()
        await app.tables.on_partitions_assigned({TP(topic.get_topic_name(), p) for p in (0, 1)})
        expected = {f"k{j}": 2970 + j for j in range(20)}  # k20..k29 ended deleted
        for table in (plain, called):
            assert dict(table.items()) == expected
        assert app.tables.last_restored == 6000
        assert len(heard) == 3000
        assert [off for p, off, _ in heard if p == 0] == list(range(1500))
        assert heard[-1][2] is None
    finally:
        await app.tables.stop_recovery()
        await app.close()


class Point(faust.Record, serializer="json"):
    x: int
    y: int


def test_runs_decode_like_the_tables_decoders() -> None:
    """Recovery's decoding of many payloads at once (plain JSON tables) gives what the
    table's own decoders give one at a time: Records from their namespace, tuple keys
    from lists; a typed table decodes one at a time."""
    app = faust.App("runs-decode", broker="memory://runs-decode", topic_partitions=1)
    plain = app.Table("plain", default=int)
    typed = app.Table("typed", default=int, key_type=str, value_type=Point)
    point = Point(x=1, y=2)
    for table, key_payloads, value_payloads in [
        (plain, [b'"a"', b'["t", [1, "b"]]', b"3", b'"a"'],
         [b"1", point.dumps(), None, b'{"plain": "dict"}']),
        (typed, [b'"a"', b'"b"'], [point.dumps(), None]),
    ]:
        messages = [Message(table.changelog_topic_name, 0, offset, key, value, 0.0)
                    for offset, (key, value) in enumerate(zip(key_payloads, value_payloads,
                                                              strict=True))]
        one_by_one = app.Table(f"{table.name}-ref", default=int, key_type=table.key_type,
                               value_type=table.value_type)
        one_by_one.apply_changelog(0, messages)  # the Message path, one decode per record
        (run,) = recovery.message_runs(messages)
        table.apply_changelog_run(0, run)
        assert dict(table.items()) == dict(one_by_one.items())
        assert table.partition_data(0).changelog_offset == len(messages) - 1  # type: ignore[union-attr]
    from fluvial.tables.store import MemoryStore, plain_json_decoders

    decoders = plain_json_decoders(plain.changelog_topic.schema)
    assert None not in decoders  # so the plain table went the many-at-once way
    assert MemoryStore()._apply_decoded([b'"a"'], [b"1"], *decoders)  # type: ignore[arg-type]
    assert plain_json_decoders(typed.changelog_topic.schema) == (None, None)
    assert plain["a"] == {"plain": "dict"} and plain[("t", (1, "b"))] == point
    assert 3 not in plain  # deleted
    assert typed["a"] == point and "b" not in typed


def test_a_run_that_cannot_be_restored_names_table_partition_and_offset() -> None:
    from fluvial.exceptions import TableError

    app = faust.App("restore-run", broker="memory://restore-run", topic_partitions=2)
    table = app.Table("totals", default=int)
    records = [Message(table.changelog_topic_name, 1, 7, b'"a"', b"1", 0.0),
               Message(table.changelog_topic_name, 1, 8, b'"b"', b"not json", 0.0)]
    (run,) = recovery.message_runs(records)
    with pytest.raises(TableError, match=r"Table totals: cannot restore partition 1 from "
                                         r"restore-run-totals-changelog: the record at "
                                         r"offset 8"):
        table.apply_changelog_run(1, run)
