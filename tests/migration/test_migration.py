"""In-place migration: a running faust-streaming 0.15.3 app moved onto fluvial, and back.

The same program (``orders_app.py``: group_by, a Table, a tumbling windowed
Table and a SetTable) runs on faust-streaming over the first third of the
input, is stopped, runs on fluvial (only its import changed, same app id)
over the second third, is stopped, and runs on faust-streaming again over the
rest. After each run the tables must hold exactly the counts of all the input
so far: each system resumes from the offsets the other committed (nothing
processed twice) and restores the other's changelogs (nothing lost).

The Faust runs import ``examples/migrating/faust_recovery_fix.py``, as the
README's Migrating section tells Faust users to: without it faust-streaming
0.15.3 drops the events it fetches while it seeks after restoring a changelog
(faust-streaming issue #596), at any start with tables to restore, the way
back included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import fluvial
from fluvial.tables.windows import TumblingWindow
from fluvial.types import TP

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = Path(__file__).with_name("orders_app.py")
RECOVERY_FIX = ROOT / "examples" / "migrating" / "faust_recovery_fix.py"
ACCOUNTS = [f"acct-{i}" for i in range(12)]
PRODUCTS = [f"prod-{i}" for i in range(5)]
PER_PHASE = 600
PARTITIONS = 4


def faust_python() -> Path:
    """faust-streaming 0.15.3 in a virtualenv of its own (made once, as bench does)."""
    sys.path.insert(0, str(ROOT))
    try:
        from bench.peers import ensure_venv
    finally:
        sys.path.remove(str(ROOT))
    try:
        return ensure_venv(ROOT / ".bench" / "venvs", "faust-0.15.3")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot install faust-streaming 0.15.3 into a virtualenv: {exc}")


def orders(start: int, count: int, base: float) -> list[dict[str, Any]]:
    return [{"order_id": i, "account_id": ACCOUNTS[(i * 7) % len(ACCOUNTS)],
             "product": PRODUCTS[(i * 3) % len(PRODUCTS)], "ts": base + i * 0.5}
            for i in range(start, start + count)]


def expected(sent: list[dict[str, Any]]) -> dict[str, Any]:
    window = TumblingWindow(100)
    per_window: Counter[tuple[str, tuple[float, float]]] = Counter()
    products: dict[str, set[str]] = {}
    for order in sent:
        for start, end in window.ranges(order["ts"]):
            per_window[(order["account_id"], (start, end))] += 1
        products.setdefault(order["account_id"], set()).add(order["product"])
    return {
        "order_count": dict(Counter(o["account_id"] for o in sent)),
        "per_window": sorted([k, list(w), n] for (k, w), n in per_window.items()),
        "products": {k: sorted(v) for k, v in products.items()},
    }


class Run:
    """One run of the program as a worker process."""

    def __init__(self, python: Path, program: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.snapshot = Path(env["MIGRATION_SNAPSHOT"])
        self.snapshot.unlink(missing_ok=True)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(python), str(program), "worker", "--without-web", "-l", "info"],
                cwd=program.parent, env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_for(self, want: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
        """Wait until the snapshot equals ``want``; return the last snapshot seen."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
            try:
                last = json.loads(self.snapshot.read_text())
            except (OSError, ValueError):
                last = {}
            if last == want:
                return last
            time.sleep(0.5)
        return last

    def stop(self) -> int:
        time.sleep(2.0)  # a few commit intervals
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"worker did not stop on SIGTERM:\n{self.tail()}") from None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def short_keys(got: dict[str, Any], want: dict[str, Any]) -> str:
    """The accounts counted wrong, as ``{account: (counted, sent)}``, for a failure message."""
    counted = got.get("order_count", {})
    wrong = {k: (counted.get(k), v) for k, v in want["order_count"].items()
             if counted.get(k) != v}
    return f"accounts (counted, sent): {wrong}\n"


def leave_unprocessed(bootstrap: str, topic: str, per_partition: int) -> list[dict[str, Any]]:
    """Copy the last records of each partition of ``topic`` (a repartition topic) to
    its end: records forwarded and not processed yet when the worker stopped, as a
    worker stopped with a backlog leaves them. Returns the orders they carry.

    The last ones, so that their windows are still open for fluvial, which closes a
    window at its end where Faust counts into it until it expires."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"copy-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": bootstrap})
    copied: list[dict[str, Any]] = []
    try:
        for partition in range(PARTITIONS):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            consumer.assign([TopicPartition(topic, partition, high - per_partition)])
            records = consumer.consume(per_partition, timeout=10)
            assert len(records) == per_partition, f"{topic}[{partition}]: {len(records)}"
            for record in records:
                assert record.error() is None, record.error()
                producer.produce(topic, record.value(), record.key(), partition=partition,
                                 headers=record.headers())
                value = json.loads(record.value() or b"{}")
                copied.append({k: value[k] for k in ("order_id", "account_id", "product", "ts")})
        assert producer.flush(30) == 0
    finally:
        consumer.close()
    return copied


async def committed(app: fluvial.App, group: str, topic: str) -> int:
    """The offsets ``group`` committed on ``topic``, summed over its partitions."""
    consumer = app.transport.create_consumer(group)
    await consumer.start()
    try:
        offsets = await consumer.committed([TP(topic, p) for p in range(PARTITIONS)])
    finally:
        await consumer.stop()
    return sum(o or 0 for o in offsets.values())


@pytest.mark.kafka
@pytest.mark.timeout(900)
async def test_faust_to_fluvial_and_back(kafka_bootstrap: str, tmp_path: Path) -> None:
    python = faust_python()
    suffix = uuid.uuid4().hex[:8]
    app_id, topic = f"migrate-{suffix}", f"migrate-orders-{suffix}"
    source = PROGRAM.read_text()
    assert source.count("\nimport faust\n") == 1
    # On Faust: the program with the README's fix for faust-streaming's restore.
    faust_program = tmp_path / "orders_app.py"
    faust_program.write_text(source.replace(
        "\nimport faust\n", "\nimport faust\nimport faust_recovery_fix  # noqa: F401\n"))
    (tmp_path / RECOVERY_FIX.name).write_text(RECOVERY_FIX.read_text())
    # On fluvial: only the import changed.
    fluvial_dir = tmp_path / "on_fluvial"
    fluvial_dir.mkdir()
    fluvial_program = fluvial_dir / "orders_app.py"
    fluvial_program.write_text(source.replace("\nimport faust\n", "\nimport fluvial as faust\n"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FLUVIAL_")},
           "MIGRATION_BOOTSTRAP": kafka_bootstrap, "MIGRATION_APP_ID": app_id,
           "MIGRATION_TOPIC": topic, "MIGRATION_SNAPSHOT": str(tmp_path / "snapshot.json")}
    fluvial_env = {**env, "PYTHONPATH": str(ROOT)}

    app = fluvial.App(f"migrate-producer-{suffix}", broker=f"kafka://{kafka_bootstrap}")
    feed = app.topic(topic, partitions=PARTITIONS, key_type=str)
    await feed.declare()
    base = (time.time() // 100) * 100 - 1000
    sent: list[dict[str, Any]] = []  # into the source topic
    left: list[dict[str, Any]] = []  # copied into the repartition topic

    async def produce(start: int) -> None:
        batch = orders(start, PER_PHASE, base)
        for order in batch:
            # Keyed by account, so that each repartitioned partition is fed by one
            # source partition, in event-time order: fluvial closes a window at its
            # end (grace=0) and drops later writes, where Faust still counts them
            # (see MIGRATING in the README).
            await feed.send(key=order["account_id"], value=order)
        await app.producer.flush()
        sent.extend(batch)

    try:
        # 1. faust-streaming over the first third.
        await produce(0)
        run = Run(python, faust_program, env, tmp_path / "faust-1.log")
        got = run.wait_for(expected(sent + left))
        assert got == expected(sent + left), short_keys(got, expected(sent + left)) + run.tail()
        # The fix was applied (it warns and changes nothing on another Faust version).
        assert "faust_recovery_fix was written for" not in run.log.read_text(errors="replace")
        # No rolling migration: a fluvial worker cannot join the group beside Faust's.
        env_beside = {**fluvial_env, "MIGRATION_SNAPSHOT": str(tmp_path / "beside.json")}
        beside = Run(Path(sys.executable), fluvial_program, env_beside, tmp_path / "beside.log")
        assert beside.proc.wait(120) == 1, beside.tail()
        assert "Are Faust workers of this app still running?" in beside.tail()
        assert run.stop() == 0, run.tail()
        assert await committed(app, app_id, topic) == len(sent)

        # 2. fluvial, the import changed, over the second third: it resumes from
        # Faust's offsets and restores Faust's changelogs. Faust's repartition topic
        # (named after the agent) is fluvial's too: what Faust forwarded and did not
        # process before its stop is processed by fluvial.
        repartition = f"orders_app.count_orders-{topic}-Order.account_id-repartition"
        left.extend(leave_unprocessed(kafka_bootstrap, repartition, 5))
        await produce(PER_PHASE)
        run = Run(Path(sys.executable), fluvial_program, fluvial_env, tmp_path / "fluvial.log")
        got = run.wait_for(expected(sent + left))
        assert got == expected(sent + left), run.tail()
        assert run.stop() == 0, run.tail()
        assert await committed(app, app_id, topic) == len(sent)

        # 3. Back to faust-streaming over the rest: it reads what fluvial wrote,
        # and what fluvial left in the repartition topic.
        left.extend(leave_unprocessed(kafka_bootstrap, repartition, 5))
        await produce(2 * PER_PHASE)
        run = Run(python, faust_program, env, tmp_path / "faust-2.log")
        got = run.wait_for(expected(sent + left))
        assert got == expected(sent + left), short_keys(got, expected(sent + left)) + run.tail()
        assert run.stop() == 0, run.tail()
        assert await committed(app, app_id, topic) == len(sent)
    finally:
        await app.close()
