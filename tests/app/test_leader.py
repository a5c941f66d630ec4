"""Leader election as Faust does it: one leader per group, on_leader work runs there only."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import fluvial as faust
from fluvial.runtime.membership import parse_client_id
from fluvial.types import TP

from .conftest import eventually

ROOT = Path(__file__).resolve().parents[2]


def spawn(app_id: str, out: Path, port: int, kafka_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FLUVIAL_BROKER": kafka_url, "TEST_APP_ID": app_id,
           "TEST_OUT": str(out), "FLUVIAL_WEB_PORT": str(port)}
    log = open(out / f"log-{port}", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "fluvial", "-A", "tests.app.leader_app:app", "worker",
         "--without-web"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def ticks(out: Path, since: float) -> list[str]:
    """The workers (by port) whose on_leader timer fired after ``since``."""
    path = out / "ticks"
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line]
    return [name for name, at in rows if float(at) > since]


async def stable_leader(app: faust.App, members: int) -> str:
    """Wait until the group has ``members`` members and one holds the leader partition;
    return that worker's port."""
    leader_tp = TP(f"{app.conf.id}-__assignor-__leader", 0)
    found: list[str] = []

    async def check() -> bool:
        try:
            group = await app.transport.describe_group(app.conf.id)
        except faust.FluvialError:
            return False
        holders = [m for m in group if leader_tp in m.assignment]
        if len(group) != members or len(holders) != 1:
            return False
        url = parse_client_id(holders[0].client_id) or ""
        found[:] = [url.rsplit(":", 1)[-1]]
        return True

    deadline = time.monotonic() + 90
    while not await check():
        assert time.monotonic() < deadline, f"no stable group of {members} with one leader"
        await asyncio.sleep(0.5)
    return found[0]


@pytest.mark.kafka
async def test_one_leader_among_three_workers_and_after_a_kill(kafka_url: str,
                                                               tmp_path: Path) -> None:
    app_id = f"leader-{uuid.uuid4().hex[:8]}"
    ports = [27101 + i for i in range(3)]
    procs = {str(p): spawn(app_id, tmp_path, p, kafka_url) for p in ports}
    probe = faust.App(app_id, broker=kafka_url)
    try:
        leader = await stable_leader(probe, 3)
        await asyncio.sleep(1.0)  # the assignment reaches every member
        since = time.time()
        await eventually(lambda: len(ticks(tmp_path, since)) >= 10, 30, "leader ticks")
        # Every tick of the settled group came from the leader only.
        assert set(ticks(tmp_path, since)) == {leader}
        flags = {p: (tmp_path / f"leader-{p}").read_text() for p in procs}
        assert flags == {p: "1" if p == leader else "0" for p in procs}
        tasks = (tmp_path / "tasks").read_text().split()[::2]
        assert tasks[-1] == leader

        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait(10)
        survivors = [p for p in procs if p != leader]
        new_leader = await stable_leader(probe, 2)
        assert new_leader in survivors
        await asyncio.sleep(1.0)
        since = time.time()
        await eventually(lambda: len(ticks(tmp_path, since)) >= 10, 30, "new leader ticks")
        assert set(ticks(tmp_path, since)) == {new_leader}
        flags = {p: (tmp_path / f"leader-{p}").read_text() for p in survivors}
        assert flags == {p: "1" if p == new_leader else "0" for p in survivors}
        # The on_leader task moved with the leadership.
        tasks = (tmp_path / "tasks").read_text().split()[::2]
        assert tasks[-1] == new_leader
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        await probe.close()
    for proc in procs.values():
        assert proc.returncode in (0, -signal.SIGKILL)


async def test_is_leader_on_one_of_two_in_process_workers(unique) -> None:  # type: ignore[no-untyped-def]
    """The in-process broker elects the same way: one leader, and the other on its stop."""
    broker = f"memory://{unique('leader')}"
    fired: list[str] = []
    apps = []
    for name, port in (("a", 27201), ("b", 27202)):
        app = faust.App(unique("group"), broker=broker, web_port=port)
        app.conf  # noqa: B018 - resolve the settings now
        app.topic("input", partitions=2)

        def timer(app: faust.App = app, name: str = name) -> None:
            fired.append(name)

        app.timer(0.05, on_leader=True)(timer)
        apps.append(app)
    # The same id for both: one group.
    apps[1]._id = apps[0].id
    apps[1].finalize()
    async with apps[0].running(), apps[1].running():
        await eventually(lambda: sum(a.is_leader() for a in apps) == 1 and len(fired) > 3,
                         10, "one leader")
        leader = next(a for a in apps if a.is_leader())
        other = next(a for a in apps if a is not leader)
        fired.clear()
        await asyncio.sleep(0.3)
        assert fired and set(fired) == {"a" if leader is apps[0] else "b"}
        leader.stop()
        await leader.wait_stopped()
    # (The context exits stopped both: nothing more to check there.)
    del other


async def test_on_leader_crontab_and_task_run_on_the_leader(unique) -> None:  # type: ignore[no-untyped-def]
    """A single worker leads its group: its on_leader crontab fires every minute (virtual
    clock) and its on_leader task runs once; outside a worker nothing leads."""
    from fluvial.testing.driver import TestDriver

    app = faust.App(unique("cron-leader"))
    app.topic("input", partitions=1)
    fired: list[float] = []
    tasks: list[bool] = []

    @app.crontab("* * * * *", on_leader=True)
    async def every_minute() -> None:
        fired.append(app.clock.time())

    @app.task(on_leader=True)
    async def once() -> None:
        tasks.append(True)

    assert not app.is_leader()
    async with TestDriver(app) as driver:
        await eventually(lambda: app.is_leader(), 10, "leadership")
        await driver.advance(180)
        await driver.settle()
    assert len(fired) == 3 and all(t % 60 == 0 for t in fired)
    assert tasks == [True]
    assert not app.is_leader()
