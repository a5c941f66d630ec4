"""Table recovery: changelog records restored per second, and restart time with RocksDB.

    .venv/bin/python -m bench.recovery                       # memory:// and Kafka
    .venv/bin/python -m bench.recovery --transports kafka --only restore --rounds 3
    .venv/bin/python -m bench.recovery --transports memory --records 200000

1. *Restore rate*: N small changelog records (JSON key ``"k<i>"`` over
   ``--keys`` distinct keys, JSON int value) over 4 partitions are produced
   beforehand; then a fresh app opens the table's partitions and the clock
   runs from the assignment to the last partition restored
   (``TableManager.on_partitions_assigned`` without a conductor waits for that).
   Measured with the memory store and with the RocksDB store; ``--rounds N``
   restores the same changelog N times per store (a fresh store each time).
2. *Restart*: a worker with ``store='rocksdb://'`` whose table holds ``--restart-keys``
   keys (restored once, then stopped cleanly) is started again with one new
   event waiting; the clock runs from ``app.running()`` to the agent seeing
   that event with the key's previous value.
3. *Takeover*: two workers share a table of ``--takeover-keys`` keys (memory
   store); worker A leaves. The clock runs from the start of A's shutdown to
   worker B processing a new event of one of A's partitions, once with
   ``table_standby_replicas=1`` (B tailed A's partitions beforehand) and once
   with 0 (B replays them from the changelog).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import fluvial as faust
from fluvial.runtime.worker import tune_gc
from fluvial.types import TP

PARTITIONS = 4


def _table_app(url: str, app_id: str, store: str, datadir: Path) -> tuple[faust.App, Any, Any]:
    app = faust.App(app_id, broker=url, store=store, datadir=str(datadir),
                    topic_partitions=PARTITIONS, broker_commit_interval=0.5)
    topic = app.topic(f"{app_id}-source", key_type=str, value_type=int, partitions=PARTITIONS)
    table = app.Table("values", default=int)
    return app, topic, table


async def _fill_changelog(app: faust.App, table: Any, records: int, keys: int) -> None:
    """Write ``records`` changelog records straight to the topic, keyed like the table's."""
    await app.declare_topics([table.changelog_topic])
    producer = app.transport.create_producer()
    await producer.start()
    try:
        name = table.changelog_topic_name
        from fluvial.transport.partitioner import partition_for_key

        encoded = [f'"k{i}"'.encode() for i in range(min(keys, records))]
        parts = [partition_for_key(k, PARTITIONS) for k in encoded]
        nkeys = len(encoded)
        send = producer.send_soon
        for i in range(records):
            j = i % nkeys
            send(name, encoded[j], str(i).encode(), partition=parts[j])
            if i % 100_000 == 99_999:
                await producer.flush()
        await producer.flush()
    finally:
        await producer.stop()


async def restore_rate(url: str, records: int, keys: int, store: str,
                       rounds: int = 1) -> list[tuple[int, float]]:
    """Per round, records restored and seconds taken, from assignment to the last
    partition restored (one changelog, filled once; a fresh store each round)."""
    app_id = f"bench-recovery-{uuid.uuid4().hex[:8]}"
    datadir = Path(tempfile.mkdtemp(prefix="fluvial-bench-"))
    results: list[tuple[int, float]] = []
    try:
        for i in range(rounds):
            app, topic, table = _table_app(url, app_id, store, datadir / str(i))
            await app.transport.start()
            if i == 0:
                await _fill_changelog(app, table, records, keys)
            assigned = {TP(topic.get_topic_name(), p) for p in range(PARTITIONS)}
            started = time.perf_counter()
            await app.tables.on_partitions_assigned(assigned)
            elapsed = time.perf_counter() - started
            results.append((app.tables.last_restored, elapsed))
            await app.tables.stop_recovery()
            for p in range(PARTITIONS):
                table.drop_partition(p)
            await app.close()
        return results
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


async def restart_time(url: str, keys: int) -> tuple[float, int]:
    """Seconds from a RocksDB worker's start to its first new event; records replayed."""
    app_id = f"bench-restart-{uuid.uuid4().hex[:8]}"
    datadir = Path(tempfile.mkdtemp(prefix="fluvial-bench-"))
    try:
        app, topic, table = _table_app(url, app_id, "rocksdb://", datadir)
        await app.transport.start()
        await _fill_changelog(app, table, keys, keys)
        # First run: restores the changelog into RocksDB (offsets kept inside).
        assigned = {TP(topic.get_topic_name(), p) for p in range(PARTITIONS)}
        await app.tables.on_partitions_assigned(assigned)
        await app.tables.stop_recovery()
        for p in range(PARTITIONS):
            table.drop_partition(p)
        await app.close()

        app, topic, table = _table_app(url, app_id, "rocksdb://", datadir)
        seen = asyncio.Event()
        got: list[int] = []

        @app.agent(topic)
        async def update(stream: faust.Stream[int]) -> None:
            async for key, value in stream.items():
                got.append(table[key])
                table[key] = value
                seen.set()

        await app.transport.start()
        await app.declare_topics([topic])
        await topic.send(key="k7", value=-1)
        started = time.perf_counter()
        async with app.running():
            await asyncio.wait_for(seen.wait(), 60)
            elapsed = time.perf_counter() - started
            replayed = app.tables.last_restored
        assert got == [7 if keys > 7 else 0], got  # the stored value, not the default
        return elapsed, replayed
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


async def takeover_time(url: str, keys: int, standby_replicas: int) -> tuple[float, int]:
    """Seconds from the owner's departure to the new owner's first new event; replayed."""
    from fluvial.transport.partitioner import partition_for_key

    app_id = f"bench-takeover-{uuid.uuid4().hex[:8]}"
    datadir = Path(tempfile.mkdtemp(prefix="fluvial-bench-"))
    seen: dict[str, asyncio.Event] = {}

    def worker(port: int) -> tuple[faust.App, Any, Any]:
        app = faust.App(app_id, broker=url, datadir=str(datadir / str(port)),
                        topic_partitions=PARTITIONS, broker_commit_interval=0.5,
                        web_port=port, table_standby_replicas=standby_replicas)
        topic = app.topic(f"{app_id}-source", key_type=str, value_type=int,
                          partitions=PARTITIONS)
        table = app.Table("values", default=int)

        @app.agent(topic)
        async def update(stream: faust.Stream[int]) -> None:
            async for key, value in stream.items():
                table[key] = value
                seen.setdefault(key, asyncio.Event()).set()

        return app, topic, table

    try:
        app_a, topic, table_a = worker(7301)
        app_b, _, table_b = worker(7302)
        await app_a.transport.start()
        await _fill_changelog(app_a, table_a, keys, keys)
        async with app_b.running():
            running_a = app_a.running()
            await running_a.__aenter__()
            try:
                for _ in range(6000):
                    a = {tp.partition for tp in app_a.conductor.assignment()}
                    b = {tp.partition for tp in app_b.conductor.assignment()}
                    if len(a) == len(b) == PARTITIONS // 2 and not (
                            app_a.tables.recovering or app_b.tables.recovering) and all(
                            t.partition_data(p) is not None
                            for t, ps in ((table_a, a), (table_b, b)) for p in ps):
                        break
                    await asyncio.sleep(0.01)
                else:
                    raise RuntimeError("the two workers did not share the partitions")
                if standby_replicas:
                    ends = await app_a.group_consumer.end_offsets(  # type: ignore[union-attr]
                        [TP(table_a.changelog_topic_name, p) for p in a])

                    def caught_up() -> bool:
                        for tp, end in ends.items():
                            store = table_b.standby_data(tp.partition)
                            if store is None or (store.changelog_offset or -1) < end - 1:
                                return False
                        return True

                    for _ in range(6000):
                        if caught_up():
                            break
                        await asyncio.sleep(0.01)
                    else:
                        raise RuntimeError("the standby did not catch up")
                probe = next(f"probe{i}" for i in range(10_000)
                             if partition_for_key(f"probe{i}".encode(), PARTITIONS) in a)
                app_b.tables.last_restored = 0  # count the takeover's recovery only
                started = time.perf_counter()
            finally:
                await running_a.__aexit__(None, None, None)
            event = seen.setdefault(probe, asyncio.Event())
            await app_b.send(topic, key=probe, value=1)
            await asyncio.wait_for(event.wait(), 120)
            elapsed = time.perf_counter() - started
            replayed = app_b.tables.last_restored
        return elapsed, replayed
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


async def run(url: str, label: str, records: int, keys: int, restart_keys: int,
              takeover_keys: int = 0, rounds: int = 1) -> None:
    tune_gc()  # as a worker process does
    for store in ("memory://", "rocksdb://") if records else ():
        results = await restore_rate(url, records, keys, store, rounds)
        for restored, elapsed in results:
            print(f"{label:7} restore  store={store:11} {restored:>9,} records in "
                  f"{elapsed:6.2f}s = {restored / elapsed:>9,.0f} records/s", flush=True)
        if len(results) > 1:
            rates = sorted(restored / elapsed for restored, elapsed in results)
            print(f"{label:7} restore  store={store:11} {len(rates)} rounds: "
                  f"{rates[0]:,.0f} - {rates[-1]:,.0f} records/s (median "
                  f"{rates[len(rates) // 2]:,.0f})", flush=True)
    if restart_keys:
        elapsed, replayed = await restart_time(url, restart_keys)
        print(f"{label:7} restart  store=rocksdb://  {restart_keys:>9,} keys: first new "
              f"event processed {elapsed:.2f}s after start ({replayed} changelog records "
              "replayed)", flush=True)
    if takeover_keys:
        for replicas in (1, 0):
            elapsed, replayed = await takeover_time(url, takeover_keys, replicas)
            print(f"{label:7} takeover standby_replicas={replicas} {takeover_keys:>9,} keys: "
                  f"new owner processed a new event {elapsed:.2f}s after the owner left "
                  f"({replayed:,} changelog records replayed)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1,
                        help="restores of the same changelog per store (a fresh store each)")
    parser.add_argument("--restart-keys", type=int, default=1_000_000)
    parser.add_argument("--takeover-keys", type=int, default=200_000)
    parser.add_argument("--only", choices=("restore", "restart", "takeover"),
                        help="run only this measurement")
    parser.add_argument("--transports", default="memory,kafka")
    args = parser.parse_args()
    if args.only:
        args.records *= args.only == "restore"
        args.restart_keys *= args.only == "restart"
        args.takeover_keys *= args.only == "takeover"
    logging.basicConfig(level=logging.WARNING)
    transports = args.transports.split(",")
    if "memory" in transports:
        asyncio.run(run(f"memory://bench-{uuid.uuid4().hex[:6]}", "memory", args.records,
                        args.keys, args.restart_keys, args.takeover_keys, args.rounds))
    if "kafka" in transports:
        from bench.kafka import kafka_broker

        with kafka_broker() as bootstrap:
            asyncio.run(run(f"kafka://{bootstrap}", "kafka", args.records, args.keys,
                            args.restart_keys, args.takeover_keys, args.rounds))


if __name__ == "__main__":
    main()
