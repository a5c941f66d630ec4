"""Routing requests to the key's owner across three worker processes on Kafka.

Three ``fluvial worker`` processes of a group_by + Table app
(``tests/web/routing_app.py``) each serve HTTP on their own port. Every key
is asked of every worker, through the app's ``@app.table_route`` view and the
built-in ``/table/`` page: each answer must be the owner's value, which is the
key's count in the input. Then one worker is frozen (SIGSTOP: a forward to it
times out into a 503) and killed (SIGKILL: a forward to it is refused, a 503 at
once); while the group rebalances every answer is the right value or a 503
with ``Retry-After``, and once it has settled both survivors answer every key
right again.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from fluvial.web.routing import FORWARDED_BY

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 3000
KEYS = 30
SESSION_TIMEOUT_S = 8
#: Of the source topic (as routing_app.PARTITIONS).
PARTITIONS = 6
FORWARD_TIMEOUT_S = 2.0
#: What a client waits for one answer: the forward timeout and some slack.
CLIENT_TIMEOUT_S = FORWARD_TIMEOUT_S + 3


@dataclass
class Worker:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    client: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        # Idle connections are dropped before the server's keep-alive timeout (5 s)
        # could close one just as a request reuses it.
        self.client = httpx.AsyncClient(base_url=self.url, timeout=CLIENT_TIMEOUT_S,
                                        limits=httpx.Limits(keepalive_expiry=1.0))

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker {self.url} exited {self.proc.returncode}:\n"
                                 f"{self.log.read_text()[-4000:]}")


def spawn(kafka_url: str, app_id: str, topic: str, tmp_path: Path, n: int) -> Worker:
    port = free_port()
    log = tmp_path / f"worker{n}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TEST_APP_ID": app_id, "TEST_TOPIC": topic,
           "FLUVIAL_BROKER": kafka_url, "FLUVIAL_DATADIR": str(tmp_path / f"data{n}"),
           "FLUVIAL_WEB_HOST": "127.0.0.1", "FLUVIAL_WEB_BIND": "127.0.0.1",
           "FLUVIAL_WEB_PORT": str(port),
           "FLUVIAL_WEB_FORWARD_TIMEOUT": str(FORWARD_TIMEOUT_S),
           "FLUVIAL_BROKER_SESSION_TIMEOUT": str(SESSION_TIMEOUT_S),
           "FLUVIAL_BROKER_HEARTBEAT_INTERVAL": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fluvial", "-A", "tests.web.routing_app:app", "worker"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Worker(f"http://127.0.0.1:{port}", proc, log)


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result()


def produce(bootstrap: str, topic: str) -> Counter[str]:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    rng = random.Random(9)
    expected: Counter[str] = Counter()
    for i in range(EVENTS):
        account = f"k{rng.randrange(KEYS)}"
        expected[account] += 1
        producer.produce(topic, json.dumps({"account": account}).encode(), f"o{i}".encode())
    producer.flush()
    return expected


@dataclass
class Round:
    """The answers of one pass over every key at every worker asked."""

    right: int = 0
    unavailable: int = 0
    forwarded: int = 0
    wrong: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.wrong and not self.unavailable


async def ask(worker: Worker, key: str, expected: int, result: Round) -> None:
    started = time.monotonic()
    try:
        routed, builtin = await asyncio.gather(worker.client.get(f"/count/{key}/"),
                                               worker.client.get(f"/table/counts/{key}/"))
    except httpx.HTTPError as exc:
        result.wrong.append(f"{worker.url} {key}: no answer in "
                            f"{time.monotonic() - started:.1f} s ({exc!r})")
        return
    for response, value in ((routed, lambda r: r.json()["count"]), (builtin, lambda r: r.json())):
        if response.status_code == 503:
            if response.headers.get("retry-after") != "1":
                result.wrong.append(f"{worker.url} {response.url}: 503 without Retry-After")
            result.unavailable += 1
        elif response.status_code == 200 and value(response) == expected:
            result.right += 1
        else:
            result.wrong.append(f"{worker.url} {response.url}: {response.status_code} "
                                f"{response.text[:200]} (expected {expected})")
    if routed.status_code == 200 and routed.json()["url"] != worker.url:
        result.forwarded += 1


async def ask_all(workers: list[Worker], expected: Counter[str]) -> Round:
    result = Round()
    await asyncio.gather(*(ask(w, key, count, result)
                           for w in workers for key, count in sorted(expected.items())))
    return result


async def settled(workers: list[Worker], expected: Counter[str], timeout: float,
                  *, strict: bool = True) -> tuple[Round, list[Round]]:
    """Ask every key of every worker until all answer right; every round's answers.

    ``strict``: stop at the first wrong answer (else the input may still be on its way).
    """
    rounds: list[Round] = []
    deadline = time.monotonic() + timeout
    while True:
        for worker in workers:
            worker.check_alive()
        result = await ask_all(workers, expected)
        rounds.append(result)
        if result.complete or (strict and result.wrong) or time.monotonic() > deadline:
            return result, rounds
        await asyncio.sleep(0.2)


async def owner_of(worker: Worker, key: str) -> str:
    response = await worker.client.get(f"/router/counts/{key}/")
    assert response.status_code == 200, response.text
    owner: str = response.json()
    return owner


@pytest.fixture
def workers(kafka_bootstrap: str, kafka_url: str, tmp_path: Path
            ) -> Iterator[tuple[list[Worker], str]]:
    suffix = uuid.uuid4().hex[:8]
    topic = f"route-orders-{suffix}"
    create_topic(kafka_bootstrap, topic)
    started = [spawn(kafka_url, f"route-{suffix}", topic, tmp_path, n) for n in range(3)]
    try:
        yield started, topic
    finally:
        for worker in started:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGCONT)
                worker.proc.kill()
            worker.proc.wait(10)


@pytest.mark.kafka
@pytest.mark.timeout(240)
async def test_every_key_from_every_worker_through_a_crash(
    kafka_bootstrap: str, workers: tuple[list[Worker], str]
) -> None:
    group, topic = workers
    urls = {w.url for w in group}
    # The group has formed: every worker sees all three, each holding partitions.
    deadline = time.monotonic() + 90
    while True:
        for worker in group:
            worker.check_alive()
        try:
            views = [(await w.client.get("/router/counts/")).json() for w in group]
            ready = [(await w.client.get("/readyz")).status_code for w in group]
        except httpx.TransportError:
            views, ready = [], []
        if views and all(set(v) == urls and all(p["active"] for p in v.values())
                         for v in views) and ready == [200] * 3:
            break
        assert time.monotonic() < deadline, f"the group did not form: {views} {ready}"
        await asyncio.sleep(0.3)

    expected = produce(kafka_bootstrap, topic)
    result, _ = await settled(group, expected, timeout=90, strict=False)
    assert result.complete, result
    # Two thirds of the keys live elsewhere than the worker asked.
    assert result.forwarded >= len(expected), result

    # A forwarded request reaching a worker that does not own the key is not sent on.
    key = sorted(expected)[0]
    owner = await owner_of(group[0], key)
    other = next(w for w in group if w.url != owner)
    looped = await other.client.get(f"/count/{key}/", headers={FORWARDED_BY: "http://x:1"})
    assert looped.status_code == 503, looped.text
    assert looped.headers["retry-after"] == "1"
    at_owner = next(w for w in group if w.url == owner)
    direct = await at_owner.client.get(f"/count/{key}/", headers={FORWARDED_BY: other.url})
    assert direct.status_code == 200 and direct.json()["count"] == expected[key]

    # Let the last offsets be committed (broker_commit_interval=0.5), so that no event
    # is processed twice after the crash and every count stays exactly the input's.
    await asyncio.sleep(2)
    victim = group[0]
    survivors = group[1:]
    victim_keys = [k for k in sorted(expected) if await owner_of(survivors[0], k) == victim.url]
    assert victim_keys, "the first worker owns no key"

    # Frozen owner: the forward times out into a 503, never a hang.
    victim.proc.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    frozen = await survivors[0].client.get(f"/count/{victim_keys[0]}/")
    took = time.monotonic() - started
    assert frozen.status_code == 503 and frozen.headers["retry-after"] == "1", frozen.text
    assert took < FORWARD_TIMEOUT_S + 1, f"a forward to a frozen owner took {took:.1f} s"

    # Dead owner, before its session times out: refused, a 503 at once.
    victim.proc.kill()
    victim.proc.wait(10)
    started = time.monotonic()
    dead = await survivors[1].client.get(f"/count/{victim_keys[-1]}/")
    took = time.monotonic() - started
    assert dead.status_code == 503 and dead.headers["retry-after"] == "1", dead.text
    assert took < 1, f"a forward to a dead owner took {took:.1f} s"

    # Through the rebalance: the right value or a 503, never a wrong value or a hang.
    killed_at = time.monotonic()
    result, rounds = await settled(survivors, expected, timeout=SESSION_TIMEOUT_S + 60)
    settle_s = time.monotonic() - killed_at
    assert not result.wrong, result.wrong[:10]
    assert result.complete, (result, f"not settled {settle_s:.0f} s after the crash")
    assert sum(r.unavailable for r in rounds) > 0, "the crash went unnoticed"
    # Settled: every key again from both survivors, twice over.
    for _ in range(2):
        again = await ask_all(survivors, expected)
        assert again.complete, again
    print(f"settled {settle_s:.1f} s after the crash; {len(rounds)} rounds, "
          f"{sum(r.unavailable for r in rounds)} answers 503, "
          f"{sum(r.right for r in rounds)} right")
    for worker in group:
        await worker.client.aclose()
