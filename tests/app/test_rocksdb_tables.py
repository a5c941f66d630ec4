"""RocksDB table stores: consistent with the changelog, restart replays only the tail."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fluvial as faust
from fluvial.exceptions import TableError
from fluvial.tables.rocksdb import RocksDBStore
from fluvial.types import TP

from .conftest import eventually


def open_store(path: Path) -> RocksDBStore:
    def enc(value: Any) -> bytes:
        return json.dumps(value).encode()

    def dec(data: bytes | None) -> Any:
        return None if data is None else json.loads(data)

    return RocksDBStore(path, encode_key=enc, encode_value=enc, decode_key=dec, decode_value=dec)


def test_writes_are_durable_only_once_persisted(tmp_path: Path) -> None:
    path = tmp_path / "t-0.db"
    store = open_store(path)
    assert store.changelog_offset is None
    store["a"] = 1
    store["b"] = 2
    assert store.get("a") == 1 and "b" in store and len(store) == 2
    store.persist(41)
    store["c"] = 3  # not persisted: the changelog may not have it yet
    del store["a"]
    assert sorted(store.keys()) == ["b", "c"]
    store.close()

    reopened = open_store(path)
    assert reopened.changelog_offset == 41
    assert dict(reopened.items()) == {"a": 1, "b": 2}
    reopened.close()


def test_locked_store_is_a_clear_error(tmp_path: Path) -> None:
    store = open_store(tmp_path / "t-0.db")
    try:
        with pytest.raises(TableError, match="locked by another process"):
            open_store(tmp_path / "t-0.db")
    finally:
        store.close()


class Order(faust.Record, serializer="json"):
    account_id: str


def build(name: str, topic_name: str, broker_url: str, datadir: Path
          ) -> tuple[faust.App, Any, Any, list[str]]:
    app = faust.App(name, broker=broker_url, store="rocksdb://", datadir=str(datadir),
                    topic_partitions=2, broker_commit_interval=0.2)
    topic = app.topic(topic_name, value_type=Order, partitions=2)
    counts = app.Table("counts", default=int)
    seen: list[str] = []

    @app.agent(topic)
    async def count(orders: faust.Stream[Order]) -> None:
        async for order in orders.group_by(Order.account_id):
            counts[order.account_id] += 1
            seen.append(order.account_id)

    return app, topic, counts, seen


async def test_restart_replays_only_the_changelog_tail(
    broker_url: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    name, topic_name = unique("rocks"), unique("orders")
    accounts = [f"acct-{i % 7}" for i in range(70)]
    app, topic, _, seen = build(name, topic_name, broker_url, tmp_path)
    async with app.running():
        for account in accounts:
            await topic.send(value=Order(account_id=account))
        await eventually(lambda: len(seen) == 70, message="70 orders counted")
    expected = {f"acct-{i}": 10 for i in range(7)}

    # Clean restart: the stores are current, nothing to replay.
    app2, _, counts2, _ = build(name, topic_name, broker_url, tmp_path)
    async with app2.running():
        await eventually(lambda: dict(counts2.items()) == expected, message="values kept")
        assert app2.tables.last_restored == 0

    # Lost local state: everything comes back from the changelog.
    shutil.rmtree(app2.conf.table_path)
    app3, _, counts3, _ = build(name, topic_name, broker_url, tmp_path)
    async with app3.running():
        await eventually(lambda: dict(counts3.items()) == expected, message="values rebuilt")
        assert app3.tables.last_restored >= 7  # every key, maybe several values of one


def test_writes_made_while_flushing_wait_for_the_next_checkpoint(tmp_path: Path) -> None:
    """persist() writes what was sealed when the changelog was sent, not later writes."""
    path = tmp_path / "t-0.db"
    store = open_store(path)
    store["a"] = 1
    store.seal()            # the checkpoint sent a=1 to the changelog
    store["b"] = 2          # written while the producer flushes
    assert store.get("a") == 1 and store.get("b") == 2
    store.persist(7)
    assert sorted(store.keys()) == ["a", "b"]
    store.close()
    reopened = open_store(path)
    assert dict(reopened.items()) == {"a": 1}  # b's changelog record was never sent
    assert reopened.changelog_offset == 7
    reopened["c"] = 3
    reopened.seal()
    reopened.persist(8)
    reopened.close()
    again = open_store(path)
    assert dict(again.items()) == {"a": 1, "c": 3}
    again.close()


def test_changelog_records_replace_writes_never_persisted(tmp_path: Path) -> None:
    """A store that received writes this worker never checkpointed, then changelog
    records (it became a standby, or was taken over), shows the changelog's values:
    its own unpersisted writes must not shadow them."""
    from fluvial.types import Message

    def dec(data: bytes | None) -> Any:
        return None if data is None else json.loads(data)

    path = tmp_path / "t-0.db"
    store = open_store(path)
    store["a"] = 1          # never sent to the changelog
    store["b"] = 2
    store.seal()            # b sent, but the checkpoint never persisted it
    store["c"] = 3
    records = [Message("t-changelog", 0, 10, b'"a"', b"5", 0.0),
               Message("t-changelog", 0, 11, b'"b"', b"6", 0.0)]
    store.apply_changelog(records, dec, dec)
    assert (store.get("a"), store.get("b"), store.get("c")) == (5, 6, 3)
    assert store.changelog_offset == 11
    store.close()
    reopened = open_store(path)
    assert dict(reopened.items()) == {"a": 5, "b": 6}
    assert reopened.changelog_offset == 11
    reopened.close()


# -- recovery writes without RocksDB's write-ahead log: what a crash leaves ------------

ROOT = Path(__file__).resolve().parents[2]

#: Runs in a subprocess: applies changelog records to a store as recovery does, maybe
#: then checkpoints a write of its own, and dies without closing anything (a crash).
CRASHING_RESTORE = """
import json, os, sys
from pathlib import Path
from fluvial.tables import rocksdb
from fluvial.types import Message

path, sync_every, records, batch, own_write = sys.argv[1:6]
rocksdb.SYNC_EVERY = int(sync_every)
enc = lambda v: json.dumps(v).encode()
dec = lambda d: None if d is None else json.loads(d)
store = rocksdb.RocksDBStore(Path(path), encode_key=enc, encode_value=enc,
                             decode_key=dec, decode_value=dec)
records = json.loads(records)
for i in range(0, len(records), int(batch)):
    store.apply_changelog([Message("t-changelog", 0, offset, enc(key),
                                   None if value is None else enc(value), 0.0)
                           for offset, key, value in records[i:i + int(batch)]], dec, dec)
if own_write:
    key, value, offset = json.loads(own_write)
    store[key] = value
    store.seal()
    store.persist(offset)
os._exit(9)
"""


def changelog(n: int) -> list[tuple[int, str, int | None]]:
    """``n`` records of 10 keys, every 7th a tombstone."""
    return [(offset, f"k{offset % 10}", None if offset % 7 == 3 else offset)
            for offset in range(n)]


def state_after(records: list[tuple[int, str, int | None]], last: int) -> dict[str, int]:
    state: dict[str, int] = {}
    for offset, key, value in records:
        if offset > last:
            break
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def crash_while_restoring(path: Path, records: list[tuple[int, str, int | None]],
                          sync_every: int, batch: int, own_write: str = "") -> None:
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", CRASHING_RESTORE, str(path), str(sync_every),
         json.dumps(records), str(batch), own_write],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=60)
    assert done.returncode == 9, done.stderr[-2000:]


def test_crash_mid_restore_resumes_from_the_last_flushed_offset(tmp_path: Path) -> None:
    """Records applied since the last flush die with the process; the stored offset is
    that flush's, so the restart replays them and ends in the changelog's state."""
    from fluvial.types import Message

    path = tmp_path / "t-0.db"
    records = changelog(250)
    # Flushes (and offsets written) after 100 and 200 records; 50 more die unflushed.
    crash_while_restoring(path, records, sync_every=100, batch=50)

    store = open_store(path)
    assert store.changelog_offset == 199
    assert dict(store.items()) == state_after(records, 199)
    # What recovery does next: replay from the stored offset on.
    start = store.changelog_offset + 1

    def dec(data: bytes | None) -> Any:
        return None if data is None else json.loads(data)

    store.apply_changelog([Message("t-changelog", 0, o, json.dumps(k).encode(),
                                   None if v is None else json.dumps(v).encode(), 0.0)
                           for o, k, v in records[start:]], dec, dec)
    assert dict(store.items()) == state_after(records, 249)
    store.close()  # a clean close makes the replayed records durable with their offset
    reopened = open_store(path)
    assert reopened.changelog_offset == 249
    assert dict(reopened.items()) == state_after(records, 249)
    reopened.close()


def test_crash_before_any_flush_restores_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "t-0.db"
    records = changelog(60)
    crash_while_restoring(path, records, sync_every=1000, batch=20)
    store = open_store(path)
    assert store.changelog_offset is None  # nothing claimed: replay everything
    assert dict(store.items()) == {}
    store.close()


def test_checkpoint_after_restore_persists_the_restored_records_first(tmp_path: Path) -> None:
    """A checkpoint writes through the log with its offset: the restored records, written
    without it, must be made durable before, or a crash would keep an offset whose
    records are gone."""
    path = tmp_path / "t-0.db"
    records = changelog(50)
    crash_while_restoring(path, records, sync_every=1000, batch=20,
                          own_write=json.dumps(["mine", 1, 50]))
    store = open_store(path)
    assert store.changelog_offset == 50
    assert dict(store.items()) == {**state_after(records, 49), "mine": 1}
    store.close()


#: A worker restoring a RocksDB table from Kafka that dies (``os._exit``) once it has
#: applied ``crash_after`` changelog records; prints how many it applied.
KILLED_MID_RESTORE = """
import asyncio, os, sys
import fluvial as faust
from fluvial.tables import recovery, rocksdb
from fluvial.types import TP

url, app_id, datadir, crash_after = sys.argv[1:5]
recovery.RESTORE_BATCH = 1000  # many small runs, so that the crash comes between flushes
rocksdb.SYNC_EVERY = 2500
app = faust.App(app_id, broker=url, store="rocksdb://", datadir=datadir, topic_partitions=2)
topic = app.topic(app_id + "-source", key_type=str, value_type=int, partitions=2)
table = app.Table("values", default=int)
applied = 0
apply_records = rocksdb.RocksDBStore.apply_records

def crashing(self, keys, *args):
    global applied
    apply_records(self, keys, *args)
    applied += len(keys)
    if applied >= int(crash_after):
        print(applied, flush=True)
        os._exit(9)

rocksdb.RocksDBStore.apply_records = crashing

async def main():
    await app.transport.start()
    await app.tables.on_partitions_assigned({TP(topic.get_topic_name(), p) for p in (0, 1)})

asyncio.run(main())
"""


@pytest.mark.kafka
async def test_worker_killed_mid_restore_resumes_from_its_store(
    kafka_url: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    """Real Kafka, a real process killed mid-restore: the next restore starts from the
    offsets the stores made durable (not from scratch) and ends with every key's last
    value, deletes included."""
    import os
    import subprocess
    import sys

    app_id, total = unique("killed"), 40_000
    datadir = tmp_path / "data"

    def build() -> tuple[faust.App, Any, Any]:
        app = faust.App(app_id, broker=kafka_url, store="rocksdb://", datadir=str(datadir),
                        topic_partitions=2)
        topic = app.topic(app_id + "-source", key_type=str, value_type=int, partitions=2)
        return app, topic, app.Table("values", default=int)

    app, topic, table = build()
    await app.transport.start()
    await app.declare_topics([table.changelog_topic])
    producer = app.transport.create_producer()
    await producer.start()
    expected: dict[str, int] = {}
    for i in range(total):
        key = f"k{i % 500}"
        value = None if i % 11 == 4 else i
        producer.send_soon(table.changelog_topic_name, table.encode_key(key),
                           None if value is None else str(value).encode(),
                           partition=i % 2)
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value
    await producer.flush()
    await producer.stop()
    await app.close()

    done = subprocess.run(
        [sys.executable, "-c", KILLED_MID_RESTORE, kafka_url, app_id, str(datadir), "12500"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=120)
    assert done.returncode == 9, done.stderr[-3000:]
    applied = int(done.stdout.split()[-1])

    app, topic, table = build()
    durable = 0
    for partition in (0, 1):
        store = open_store(app.conf.table_path / f"values-{partition}.db")
        durable += 0 if store.changelog_offset is None else store.changelog_offset + 1
        store.close()
    assert 0 < durable <= applied < total
    await app.transport.start()
    try:
        await app.tables.on_partitions_assigned(
            {TP(topic.get_topic_name(), p) for p in (0, 1)})
        assert app.tables.last_restored == total - durable
        assert dict(table.items()) == expected
    finally:
        await app.tables.stop_recovery()
        await app.close()
