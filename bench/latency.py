"""End-to-end latency at a steady rate: fluvial against quixstreams (and faust-streaming).

    .venv/bin/python -m bench.latency                      # part of ``make bench``
    .venv/bin/python -m bench.latency --rates 2000 --seconds 3 --systems fluvial
    .venv/bin/python -m bench.latency --series             # keep every event's latency

For each rate, system and pipeline: a fresh 8-partition topic and consumer group;
the pipeline (``bench/pipelines/<system>_latency.py``) starts; a paced producer
(``bench.paced``, its own process) sends one event every 50 ms until the pipeline
has seen one (so start-up is not measured), then exactly ``rate * (warmup +
seconds)`` events at ``rate`` events/s, each JSON with its ``produce()`` time.
The pipeline records, for every event of the measured phase (after ``--warmup``
seconds), the time it sees it minus that time: for ``plain`` in the agent (Quix:
``sdf.update``), for ``table`` after the table update that follows the group_by
(the repartition hop included). p50, p99 and max are over the measured events.

A pipeline that has not seen all the events ``--grace`` seconds after the run should
have ended fell behind the rate: reported as such, with how many it had seen.
faust-streaming runs only where asked (``--systems``): it does not keep up at 10,000
events/s on this machine (see bench/README.md).
The broker is ``KAFKA_BOOTSTRAP_SERVERS``, else fluvial's test broker.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import kafka, peers
from bench.paced import PRIME, TICKS, percentiles, produce_paced
from bench.pipelines._common import PARTITIONS
from bench.runner import log_tail, stop_group, wait_exit

REPO = Path(__file__).resolve().parent.parent
PIPELINES_DIR = REPO / "bench" / "pipelines"
WORK = REPO / ".bench"

SYSTEMS = ("fluvial", "quix", "faust")
SYSTEM_NAMES = {"fluvial": "fluvial", "quix": "quixstreams", "faust": "faust-streaming"}
PIPELINES = ("plain", "table")
LABELS = (PRIME, "warmup", "measure", "done")
#: Seconds a pipeline may take to start and see its first event.
STARTUP_TIMEOUT_S = 120.0
#: A pipeline whose last measured events (this share of them) waited longer than
#: BEHIND_MS at the median fell behind the rate, however many it saw in time.
END_SHARE = 0.05
BEHIND_MS = 1000.0


@dataclass
class LatencyResult:
    """One (rate, system, pipeline) run, as printed and written to latency.json."""

    system: str
    pipeline: str
    rate: int
    events: int
    status: str  # "ok", "behind" (did not keep up), "failed" or "timeout"
    seen: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    #: Median latency of the last END_SHARE of the measured events.
    end_ms: float | None = None
    measured: int = 0
    max_rss_mb: float | None = None
    error_tail: str = ""
    series: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("series")
        return out


def run_one(bootstrap: str, python: Path, system: str, pipeline: str, rate: int,
            args: argparse.Namespace, scratch: Path, log: Path) -> LatencyResult:
    """One pipeline at one rate: start it, prime it, pace the events, read its result."""
    name = f"{system}-{pipeline}-{rate}"
    events = int(rate * (args.warmup + args.seconds))
    topic = f"bench-latency-{scratch.name}-{name}"
    kafka.create_topic(bootstrap, topic, PARTITIONS)
    result_path, ready_path = scratch / f"{name}.json", scratch / f"{name}.ready"
    state_dir = scratch / name
    state_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "FLUVIAL_"))}
    env.pop("PYTHONPATH", None)
    env.update({
        "PYTHONUNBUFFERED": "1", "BENCH_PIPELINE": pipeline, "BENCH_EVENTS": str(events),
        "BENCH_SECONDS": str(args.warmup + args.seconds), "BENCH_GRACE": str(args.grace),
        "BENCH_TOPIC": topic, "BENCH_APP_ID": f"bench-latency-{scratch.name}-{name}",
        "BENCH_RESULT": str(result_path), "BENCH_READY": str(ready_path),
        "BENCH_BOOTSTRAP": bootstrap, "BENCH_STATE_DIR": str(state_dir),
    })
    if system == "fluvial":
        env["PYTHONPATH"] = str(REPO)
        env["FLUVIAL_BROKER"] = f"kafka://{bootstrap}"
        env.update(setting_env(args.settings))
    cmd = [str(python), str(PIPELINES_DIR / f"{system}_latency.py")]
    if system != "quix":
        cmd += ["worker"] + (["-l", "warn", "--without-web"] if system == "faust" else [])
    label: Synchronized[int] = multiprocessing.Value("i", LABELS.index(PRIME))
    sent: Synchronized[int] = multiprocessing.Value("q", 0)
    result = LatencyResult(system, pipeline, rate, events, "failed")
    producer = multiprocessing.Process(
        target=produce_paced, args=(bootstrap, topic, rate, label, sent, LABELS, events),
        daemon=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        producer.start()
        if not _wait_for(lambda: ready_path.exists(), proc, STARTUP_TIMEOUT_S):
            result.status = "failed" if proc.poll() is not None else "timeout"
            result.error_tail = log_tail(log, "never saw an event")
            return result
        label.value = LABELS.index("warmup")
        time.sleep(args.warmup)
        label.value = LABELS.index("measure")
        limit = args.seconds + args.grace + 30
        if not _wait_for(lambda: result_path.exists(), proc, limit):
            result.status = "failed" if proc.poll() is not None else "timeout"
            result.error_tail = log_tail(log, f"no result {limit:.0f} s after the warm-up")
            return result
        data = json.loads(result_path.read_text())
        wait_exit(proc, time.time())
    finally:
        label.value = LABELS.index("done")
        producer.join(30)
        stop_group(proc)
        kafka.delete_topic(bootstrap, topic)
    figures = percentiles(data["latencies"])
    result.status, result.seen = data["status"], data["seen"]
    result.max_rss_mb = data["max_rss_mb"]
    if figures:
        result.measured = int(figures["n"])
        result.p50_ms, result.p99_ms, result.max_ms = (
            figures["p50"], figures["p99"], figures["max"])
        last = data["latencies"][-max(1, int(len(data["latencies"]) * END_SHARE)):]
        result.end_ms = percentiles(last)["p50"]
        if result.end_ms > BEHIND_MS:
            result.status = "behind"
    result.series = {"latency": data["latencies"], "received": data["received"]}
    return result


def _wait_for(done: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None or time.monotonic() > deadline:
            return done()
        time.sleep(0.05)
    return True


def run(bootstrap: str, args: argparse.Namespace, console: Console) -> list[LatencyResult]:
    """Every rate, system and pipeline asked for, one after the other."""
    pythons = {"fluvial": Path(sys.executable)}
    for peer in ("quix", "faust"):
        if peer in args.systems:
            pythons[peer] = peers.ensure_venv(WORK / "venvs", peer)
    scratch = WORK / "tmp" / ("latency-" + time.strftime("%Y%m%d-%H%M%S-")
                              + uuid.uuid4().hex[:4])
    scratch.mkdir(parents=True, exist_ok=True)
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: list[LatencyResult] = []
    for rate in args.rates:
        for system in args.systems:
            for pipeline in args.pipelines:
                name = f"{system}-{pipeline}-{rate}"
                console.print(f"latency {name}: {rate:,} events/s for "
                              f"{args.warmup:g} + {args.seconds:g} s ...")
                result = run_one(bootstrap, pythons[system], system, pipeline, rate, args,
                                 scratch, logs / f"latency-{scratch.name}-{name}.log")
                results.append(result)
                console.print(f"latency {name}: {summary(result)}")
    return results


def summary(r: LatencyResult) -> str:
    if r.status in ("failed", "timeout"):
        return f"[red]{r.status}[/]: {r.error_tail}"
    figures = (f"p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, max {r.max_ms:.0f} ms"
               if r.p50_ms is not None else "no measured events")
    if r.status == "behind":
        return (f"[yellow]did not keep up[/]: saw {r.seen:,} of {r.events:,} events in the "
                f"time allowed, the last ones {_seconds(r.end_ms)} late; {figures}")
    return figures


def _seconds(ms: float | None) -> str:
    return "?" if ms is None else f"{ms / 1000:.1f} s"


def report(results: list[LatencyResult], console: Console) -> None:
    table = Table(title="end-to-end latency at a steady rate (ms, produce() to the "
                        "agent / table update; lower is better)")
    for column in ("pipeline", "events/s", "system", "p50", "p99", "max", "events measured",
                   "peak RSS MB", "status"):
        table.add_column(column, justify="left" if column in ("pipeline", "system", "status")
                         else "right")

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    for r in results:
        status = r.status if r.status != "behind" else (
            f"did not keep up (saw {r.seen:,}/{r.events:,}, the last {_seconds(r.end_ms)} late)")
        table.add_row(r.pipeline, f"{r.rate:,}", SYSTEM_NAMES[r.system], ms(r.p50_ms),
                      ms(r.p99_ms), ms(r.max_ms), f"{r.measured:,}",
                      "-" if r.max_rss_mb is None else f"{r.max_rss_mb:.0f}", status)
    console.print(table)
    for r in results:
        if r.status in ("failed", "timeout"):
            console.print(f"\n[bold red]{r.system} {r.pipeline} at {r.rate:,}/s: {r.status}[/]")
            console.print(r.error_tail, markup=False, highlight=False)


def write(path: Path, results: list[LatencyResult], args: argparse.Namespace) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"warmup_s": args.warmup, "seconds": args.seconds,
               "runs": [r.as_json() for r in results]}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    if args.series:
        folder = path.parent / "latency-series"
        folder.mkdir(exist_ok=True)
        for r in results:
            if r.series:
                (folder / f"{r.system}-{r.pipeline}-{r.rate}.json").write_text(
                    json.dumps(r.series))


def add_arguments(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The options, also offered by ``bench.run`` (there with ``prefix='latency-'``)."""
    p.add_argument(f"--{prefix}rates", dest="rates", type=_ints, default=[10_000, 50_000],
                   help="comma-separated events/s (default 10000,50000)")
    p.add_argument(f"--{prefix}seconds", dest="seconds", type=float, default=8.0,
                   help="measured seconds per run, after the warm-up (default 8)")
    p.add_argument(f"--{prefix}warmup", dest="warmup", type=float, default=2.0,
                   help="seconds at the rate before measuring (default 2)")
    p.add_argument(f"--{prefix}grace", dest="grace", type=float, default=10.0,
                   help="seconds past the run's end after which a pipeline that has not "
                        "seen every event is reported as not keeping up (default 10)")
    p.add_argument(f"--{prefix}series", dest="series", action="store_true",
                   help="also write every measured event's latency and receive time to "
                        ".bench/latency-series/")


def setting(text: str) -> tuple[str, str]:
    """An argparse type: ``NAME=VALUE``, a fluvial setting."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def setting_env(settings: list[tuple[str, str]]) -> dict[str, str]:
    """The environment that gives fluvial's worker ``settings``."""
    return {f"FLUVIAL_{name.upper()}": value for name, value in settings}


def add_settings_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="settings", type=setting, action="append", default=[],
                   metavar="NAME=VALUE",
                   help="a fluvial setting for fluvial's workers (as FLUVIAL_NAME in their "
                        "environment; the bench passes no other FLUVIAL_ variable), e.g. "
                        "--set producer_linger_ms=1; repeatable")


def _ints(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < TICKS:
        raise argparse.ArgumentTypeError(f"each rate must be at least {TICKS} events/s")
    return values


def csv_choices(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated list of some of ``allowed``."""

    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}; got {text!r}")
        return items
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", type=csv_choices(SYSTEMS), default=["fluvial", "quix"],
                        help="comma-separated: fluvial,quix,faust (default fluvial,quix)")
    parser.add_argument("--only", dest="pipelines", type=csv_choices(PIPELINES),
                        default=list(PIPELINES), help="comma-separated: plain,table")
    parser.add_argument("--results", type=Path, default=WORK / "latency.json")
    add_arguments(parser)
    add_settings_argument(parser)
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or args.grace < 0:
        parser.error("--seconds must be above 0, --warmup and --grace at least 0")
    console = Console() if sys.stdout.isatty() else Console(width=150)
    with kafka.kafka_broker() as bootstrap:
        results = run(bootstrap, args, console)
    report(results, console)
    write(args.results, results, args)
    console.print(f"results written to {args.results}")
    return 0 if all(r.status in ("ok", "behind") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
