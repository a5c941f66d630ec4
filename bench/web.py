"""Event latency with and without web traffic, and table_route request latency, on Kafka.

    .venv/bin/python -m bench.web                  # = make bench-web, about 90 s
    .venv/bin/python -m bench.web --phase-seconds 5 --rate 2000 --requests 50   # a quick look

A paced producer (its own process) sends ``--rate`` events/s, JSON with the
send time in the message, keyed by ~1000 account ids, to an 8-partition topic,
for the whole run. ``fluvial worker`` processes of ``bench/web_app.py`` count
them per account in a Table and record each event's latency at the agent
(receive time minus send time). Three phases, each ``--phase-seconds`` long after
``WARMUP_S`` of warm-up that is not counted:

idle   one worker, no web traffic: the pipeline's event latency
web    one worker, ``--requests`` requests/s to its ``@app.table_route`` view
       (every key is local): event latency under web load, request latency
two    a second worker has joined (the rebalance is not counted); the same
       request rate to the first worker, half for keys it owns (local), half for
       keys the second owns (forwarded there over HTTP)

Requests are due on a fixed schedule and sent over 32 kept-alive connections;
each one's latency runs from the time it was due, so a stall counts for every
request it held up (no coordinated omission).
The broker is ``KAFKA_BOOTSTRAP_SERVERS`` if set, else fluvial's test broker (as
``bench.run`` does). Results are printed and written to ``.bench/web.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench import kafka
from bench.paced import ACCOUNTS, TICKS, percentiles, produce_paced
from bench.web_app import PARTITIONS

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".bench"
WARMUP_S = 3.0
PHASES = ("idle", "web", "two")
#: What the producer tags events with, by index (shared with its process as a number).
LABELS = ("warmup", "idle", "web", "join", "two", "done")


# -- workers -----------------------------------------------------------------------------


@dataclass
class Worker:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def spawn(n: int, bootstrap: str, app_id: str, topic: str, scratch: Path) -> Worker:
    port = free_port()
    log = scratch / f"worker{n}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUVIAL_")}
    env.update({"PYTHONPATH": str(REPO), "BENCH_APP_ID": app_id, "BENCH_TOPIC": topic,
                "FLUVIAL_BROKER": f"kafka://{bootstrap}",
                "FLUVIAL_DATADIR": str(scratch / f"data{n}"),
                "FLUVIAL_WEB_HOST": "127.0.0.1", "FLUVIAL_WEB_BIND": "127.0.0.1",
                "FLUVIAL_WEB_PORT": str(port)})
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fluvial", "-A", "bench.web_app:app", "worker"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Worker(f"http://127.0.0.1:{port}", proc, log)


def free_port() -> int:
    """A free loopback port, for a worker to bind."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(workers: Iterable[Worker]) -> None:
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.proc.wait(30)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait(10)


async def wait_settled(client: httpx.AsyncClient, workers: list[Worker],
                       timeout: float = 90) -> None:
    """Until every worker is ready and sees all of them, each holding partitions."""
    urls = {w.url for w in workers}
    deadline = time.monotonic() + timeout
    while True:
        for worker in workers:
            if worker.proc.poll() is not None:
                raise RuntimeError(f"worker {worker.url} exited {worker.proc.returncode}:\n"
                                   + worker.log.read_text(errors="replace")[-3000:])
        try:
            ready = [(await client.get(w.url + "/readyz")).status_code for w in workers]
            views = [(await client.get(w.url + "/router/counts/")).json() for w in workers]
        except httpx.TransportError:
            ready, views = [], []
        if ready == [200] * len(workers) and all(
                set(v) == urls and all(p["active"] for p in v.values()) for v in views):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers did not settle in {timeout:.0f} s: {views}")
        await asyncio.sleep(0.5)


# -- request load ------------------------------------------------------------------------

#: Kept-alive connections the load is sent over, and the seconds one answer may take.
CONNECTIONS = 32
REQUEST_TIMEOUT_S = 10.0
#: Seconds the requests still queued when the schedule ends may take to be answered.
DRAIN_S = 15.0


@dataclass
class Requests:
    """Latencies (seconds) of the answered requests, per kind; failures counted."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)


class Connection:
    """One kept-alive HTTP/1.1 connection: GET, answers with a Content-Length.

    The load generator's own client: httpx's connection pool spends its CPU on
    bookkeeping once requests queue for a connection, and the measurement would
    be the client's.
    """

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> int:
        """The status code of ``GET path`` (the body is read and dropped)."""
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        return status

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def request_load(url: str, keys: dict[str, list[str]], rate: int, seconds: float,
                       result: Requests) -> None:
    """``rate`` requests/s for ``seconds``, cycling through the kinds of key.

    Each request's latency runs from the time it was due, not from when a
    connection was free to send it (no coordinated omission: a stall counts
    for every request it held up).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, str, str] | None] = asyncio.Queue()

    async def client() -> None:
        connection = Connection(url)
        try:
            while (item := await queue.get()) is not None:
                due, kind, key = item
                try:
                    status = await asyncio.wait_for(connection.get(f"/count/{key}/"),
                                                    REQUEST_TIMEOUT_S)
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError,
                        TimeoutError):
                    connection.close()
                    status = 0
                if status == 200:
                    result.latencies.setdefault(kind, []).append(loop.time() - due)
                else:
                    result.failed[kind] = result.failed.get(kind, 0) + 1
        finally:
            connection.close()

    clients = [asyncio.create_task(client()) for _ in range(CONNECTIONS)]
    kinds = sorted(keys)
    rng = random.Random(5)
    start = loop.time()
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        kind = kinds[i % len(kinds)]
        queue.put_nowait((due, kind, rng.choice(keys[kind])))
    for _ in clients:
        queue.put_nowait(None)
    _, late = await asyncio.wait(clients, timeout=DRAIN_S)
    for task in late:
        task.cancel()
    while not queue.empty():
        item = queue.get_nowait()
        if item is not None:
            result.failed[item[1]] = result.failed.get(item[1], 0) + 1


async def owners(client: httpx.AsyncClient, url: str, keys: Iterable[str]) -> dict[str, str]:
    return {key: (await client.get(f"{url}/router/counts/{key}/")).json() for key in keys}


# -- the run -----------------------------------------------------------------------------


async def run(bootstrap: str, args: argparse.Namespace, scratch: Path,
              console: Console) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    app_id, topic = f"bench-web-{suffix}", f"bench-web-{suffix}"
    kafka.create_topic(bootstrap, topic, PARTITIONS)
    label: Synchronized[int] = multiprocessing.Value("i", LABELS.index("warmup"))
    sent: Synchronized[int] = multiprocessing.Value("q", 0)
    workers = [spawn(1, bootstrap, app_id, topic, scratch)]
    producer: multiprocessing.Process | None = None
    requests = {"web": Requests(), "two": Requests()}
    timings: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await wait_settled(client, workers)
            producer = multiprocessing.Process(
                target=produce_paced,
                args=(bootstrap, topic, args.rate, label, sent, LABELS),
                daemon=True)
            producer.start()
            first = workers[0].url

            async def phase(name: str, load: Any = None) -> None:
                label.value = LABELS.index("warmup")
                await asyncio.sleep(WARMUP_S)
                label.value = LABELS.index(name)
                console.print(f"phase {name}: {args.phase_seconds:g} s")
                began = time.monotonic()
                if load is None:
                    await asyncio.sleep(args.phase_seconds)
                else:
                    await load
                timings[name] = time.monotonic() - began

            await phase("idle")
            keys = [f"a{i}" for i in range(ACCOUNTS)]
            await phase("web", request_load(first, {"local": keys}, args.requests,
                                            args.phase_seconds, requests["web"]))
            label.value = LABELS.index("join")
            began = time.monotonic()
            workers.append(spawn(2, bootstrap, app_id, topic, scratch))
            await wait_settled(client, workers)
            timings["join"] = time.monotonic() - began
            where = await owners(client, first, keys[:300])
            split = {"local": [k for k, u in where.items() if u == first],
                     "forwarded": [k for k, u in where.items() if u != first]}
            await phase("two", request_load(first, split, args.requests,
                                            args.phase_seconds, requests["two"]))
            label.value = LABELS.index("done")
            producer.join(60)
            await asyncio.sleep(2)  # the last events reach the agents
            events: dict[str, list[float]] = {}
            for worker in workers:
                seen = (await client.get(worker.url + "/bench/latencies/")).json()
                for name, values in seen.items():
                    events.setdefault(name, []).extend(values)
    finally:
        label.value = LABELS.index("done")
        if producer is not None and producer.is_alive():
            producer.join(30)
        stop(workers)
        kafka.delete_topic(bootstrap, topic)
    return {
        "rate": args.rate, "requests_per_s": args.requests, "phase_s": args.phase_seconds,
        "sent": sent.value, "timings_s": timings,
        "events": {name: percentiles(events.get(name, [])) for name in PHASES},
        "requests": {phase: {kind: percentiles(v) for kind, v in r.latencies.items()}
                     for phase, r in requests.items()},
        "failed_requests": {phase: r.failed for phase, r in requests.items()},
    }


def report(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"Event latency at {result['rate']:,} events/s (ms, send to agent)")
    for column in ("phase", "events", "p50", "p99", "max"):
        table.add_column(column, justify="right" if column != "phase" else "left")
    names = {"idle": "one worker, no web traffic",
             "web": f"one worker, {result['requests_per_s']} table_route requests/s",
             "two": f"two workers, {result['requests_per_s']} requests/s (half forwarded)"}
    for phase in PHASES:
        figures = result["events"][phase]
        if figures:
            table.add_row(names[phase], f"{figures['n']:,}", f"{figures['p50']:.1f}",
                          f"{figures['p99']:.1f}", f"{figures['max']:.1f}")
    console.print(table)
    table = Table(title="table_route request latency (ms, client to answer)")
    for column in ("requests", "answered", "failed", "p50", "p99", "max"):
        table.add_column(column, justify="right" if column != "requests" else "left")
    rows = [("web", "local", "local key, one worker"),
            ("two", "local", "local key, two workers"),
            ("two", "forwarded", "forwarded key, two workers")]
    for phase, kind, name in rows:
        figures = result["requests"][phase].get(kind)
        failed = result["failed_requests"][phase].get(kind, 0)
        if figures:
            table.add_row(name, f"{figures['n']:,}", str(failed), f"{figures['p50']:.1f}",
                          f"{figures['p99']:.1f}", f"{figures['max']:.1f}")
        else:
            table.add_row(name, "0", str(failed), "-", "-", "-")
    console.print(table)
    console.print(f"events sent: {result['sent']:,}; second worker joined and settled in "
                  f"{result['timings_s'].get('join', float('nan')):.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=10_000, help="events/s (default 10000)")
    parser.add_argument("--requests", type=int, default=200,
                        help="table_route requests/s in the web phases (default 200)")
    parser.add_argument("--phase-seconds", type=float, default=15.0,
                        help="measured seconds per phase (default 15)")
    args = parser.parse_args(argv)
    if args.rate < TICKS or args.requests < 1 or args.phase_seconds <= 0:
        parser.error(f"--rate must be at least {TICKS}, --requests at least 1, "
                     "--phase-seconds above 0")
    console = Console() if sys.stdout.isatty() else Console(width=120)
    scratch = WORK / "tmp" / ("web-" + time.strftime("%Y%m%d-%H%M%S"))
    scratch.mkdir(parents=True, exist_ok=True)
    with kafka.kafka_broker() as bootstrap:
        result = asyncio.run(run(bootstrap, args, scratch, console))
    report(result, console)
    WORK.mkdir(exist_ok=True)
    (WORK / "web.json").write_text(json.dumps(result, indent=2))
    console.print(f"written to {WORK / 'web.json'}; worker logs in {scratch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
