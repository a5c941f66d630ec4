"""``make bench``: fluvial against faust-streaming and quixstreams, same broker, same data.

Two pipelines over an 8-partition topic of small JSON orders keyed by order id
(~1000 distinct accounts):

plain      iterate the stream and count
table      group_by(account_id), then increment a per-account count in a table
table-eos  the table pipeline under processing_guarantee="exactly_once" (fluvial only:
           the cost of transactions against ``table``)
plain-avro, table-avro
           plain and table with Avro values in the Confluent wire format (fluvial only,
           on Kafka: the cost of Avro and the schema registry against JSON). The registry
           is ``SCHEMA_REGISTRY_URL``, else Apicurio Registry started for the run

Each run is a fresh subprocess on a fresh topic and consumer group; the input is
produced beforehand with confluent-kafka, so only processing is timed: from the first
event the pipeline sees to the N-th. Peers run from their own virtualenvs under
``.bench/venvs``. Results are printed and written to ``.bench/results.json``.

Then, on Kafka, the end-to-end latency of the plain and table pipelines at a steady
rate (10,000 and 50,000 events/s by default), fluvial against quixstreams: see
``bench.latency`` (``--latency-*`` options, ``--no-latency`` to skip). Written to
``.bench/latency.json``.

Examples::

    python -m bench.run
    python -m bench.run --only plain --transports kafka --systems faust,quix
    python -m bench.run --scale 0.1          # a quick smoke run
    python -m bench.run --systems fluvial --transports memory --sensors none,monitor,prometheus

``--sensors`` (fluvial): ``monitor`` is a worker as it comes (the default Monitor
installed); ``none`` removes it (no sensor: the hooks' flags are off);
``prometheus`` also renders ``/metrics`` every second, as a scraper would make it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console

from bench import kafka, latency, peers
from bench.pipelines._common import ACCOUNTS
from bench.report import print_report, write_results
from bench.runner import RunResult, run_pipeline

REPO = Path(__file__).resolve().parent.parent
PIPELINES_DIR = REPO / "bench" / "pipelines"
WORK = REPO / ".bench"

SYSTEMS = ("fluvial", "faust", "quix")
PIPELINES = ("plain", "table", "table-eos", "plain-avro", "table-avro")
#: Pipelines only fluvial runs (the peers' exactly-once and Avro are not compared).
FLUVIAL_ONLY = {"table-eos", "plain-avro", "table-avro"}
#: Pipelines with Avro values: Kafka only, against a schema registry.
AVRO_PIPELINES = {"plain-avro", "table-avro"}
TRANSPORTS = ("memory", "kafka")
SENSORS = ("none", "monitor", "prometheus")

# N per run: a few seconds of processing each on a 2-core machine.
DEFAULT_EVENTS: dict[tuple[str, str], int] = {
    ("fluvial", "plain"): 1_000_000,
    ("fluvial", "table"): 300_000,
    ("fluvial", "table-eos"): 300_000,
    ("fluvial", "plain-avro"): 1_000_000,
    ("fluvial", "table-avro"): 300_000,
    ("faust", "plain"): 100_000,
    ("faust", "table"): 30_000,
    ("quix", "plain"): 300_000,
    ("quix", "table"): 100_000,
}
STORES = {"fluvial": "memory://", "faust": "memory://", "quix": "RocksDB (Quix default)"}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    console = Console() if sys.stdout.isatty() else Console(width=150)
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    scratch = WORK / "tmp" / run_id
    scratch.mkdir(parents=True, exist_ok=True)
    (WORK / "logs").mkdir(parents=True, exist_ok=True)

    pythons = {"fluvial": Path(sys.executable)}
    if "kafka" in args.transports:
        for peer in ("faust", "quix"):
            if peer in args.systems:
                pythons[peer] = peers.ensure_venv(WORK / "venvs", peer)

    plan = [("memory", "fluvial", p) for p in args.pipelines
            if "memory" in args.transports and "fluvial" in args.systems
            and p not in AVRO_PIPELINES]
    plan += [("kafka", s, p) for s in args.systems for p in args.pipelines
             if "kafka" in args.transports and (s == "fluvial" or p not in FLUVIAL_ONLY)]
    console.print(f"bench {run_id}: table stores: "
                  + ", ".join(f"{s}={STORES[s]}" for s in args.systems))

    results: list[RunResult] = []
    latencies: list[latency.LatencyResult] = []
    latency_plan = _latency_plan(args)
    meta: dict[str, object] = {"run_id": run_id, "order_key": "order id",
                               "partitions": 8, "stores": STORES}
    try:
        for transport, system, pipeline in [r for r in plan if r[0] == "memory"]:
            for sensors in args.sensors if system == "fluvial" else ["monitor"]:
                results.append(_one(args, console, scratch, run_id, pythons, transport,
                                    system, pipeline, bootstrap="", sensors=sensors))
        kafka_runs = [r for r in plan if r[0] == "kafka"]
        if kafka_runs or latency_plan:
            with contextlib.ExitStack() as stack:
                bootstrap = stack.enter_context(kafka.kafka_broker())
                meta["bootstrap"] = bootstrap
                console.print(f"Kafka at {bootstrap}")
                registry = ""
                if any(r[2] in AVRO_PIPELINES for r in kafka_runs):
                    registry = stack.enter_context(kafka.schema_registry(scratch / "registry"))
                    console.print(f"schema registry at {registry}")
                for transport, system, pipeline in kafka_runs:
                    for sensors in args.sensors if system == "fluvial" else ["monitor"]:
                        results.append(_one(args, console, scratch, run_id, pythons,
                                            transport, system, pipeline,
                                            bootstrap=bootstrap, registry=registry,
                                            sensors=sensors))
                if latency_plan:
                    latencies = latency.run(bootstrap, latency_plan, console)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if results:
            print_report(results, console)
            _print_eos_cost(results, console)
            _print_avro_cost(results, console)
            write_results(args.results, results, meta)
            console.print(f"results written to {args.results}")
        if latencies:
            latency.report(latencies, console)
            latency.write(args.latency_results, latencies, latency_plan)
            console.print(f"latency results written to {args.latency_results}")
    return 0 if all(r.status == "ok" for r in results) and all(
        r.status in ("ok", "behind") for r in latencies) else 1


def _latency_plan(args: argparse.Namespace) -> argparse.Namespace | None:
    """The latency runs (``bench.latency``) of this bench, None if there are none:
    on Kafka, the plain and table pipelines of fluvial and quixstreams asked for
    (faust-streaming only with ``--latency-faust``: it does not keep up at 10,000 events/s)."""
    systems = [s for s in latency.SYSTEMS if s in args.systems
               and (s != "faust" or args.latency_faust)]
    pipelines = [p for p in latency.PIPELINES if p in args.pipelines]
    if not args.latency or "kafka" not in args.transports or not systems or not pipelines:
        return None
    plan = argparse.Namespace(**vars(args))
    plan.systems, plan.pipelines = systems, pipelines
    return plan


def _one(
    args: argparse.Namespace,
    console: Console,
    scratch: Path,
    run_id: str,
    pythons: dict[str, Path],
    transport: str,
    system: str,
    pipeline: str,
    *,
    bootstrap: str,
    registry: str = "",
    sensors: str = "monitor",
) -> RunResult:
    events = args.events or max(2, int(DEFAULT_EVENTS[system, pipeline] * args.scale))
    name = f"{system}-{pipeline}-{transport}"
    if args.sensors != ["monitor"]:
        name += f"-sensors-{sensors}"
    topic = f"bench-orders-{run_id}-{name}"
    if transport == "kafka":
        kafka.create_topic(bootstrap, topic)
        encode = kafka.avro_encoder(registry, topic) if pipeline in AVRO_PIPELINES else None
        produce_s = kafka.produce_orders(bootstrap, topic, events, encode, args.accounts)
        console.print(f"[dim]{name}: produced {events:,} orders in {produce_s:.1f} s[/]")
    state_dir = scratch / name
    state_dir.mkdir()
    env = _env(system, transport, bootstrap, {
        "BENCH_PIPELINE": pipeline,
        "BENCH_EVENTS": str(events),
        "BENCH_TOPIC": topic,
        "BENCH_APP_ID": f"bench-{run_id}-{name}",
        "BENCH_RESULT": str(scratch / f"{name}.json"),
        "BENCH_BOOTSTRAP": bootstrap,
        "BENCH_STATE_DIR": str(state_dir),
        "BENCH_SENSORS": sensors,
        "BENCH_ACCOUNTS": str(args.accounts),
    })
    if pipeline in AVRO_PIPELINES:
        env["FLUVIAL_SCHEMA_REGISTRY_URL"] = registry
    if system == "fluvial":
        env.update(latency.setting_env(args.settings))
    script = PIPELINES_DIR / f"{system}_app.py"
    cmd = [str(pythons[system]), str(script)]
    if system == "faust":
        cmd += ["worker", "-l", "warn", "--without-web"]
    elif system == "fluvial":
        cmd += ["worker"]
        if args.profile:
            # py-spy samples every thread, GIL holders marked; collapsed stacks.
            profile = WORK / "profiles" / f"{run_id}-{name}.txt"
            profile.parent.mkdir(parents=True, exist_ok=True)
            spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
            cmd = [spy, "record", "--format", "raw", "--threads", "--gil",
                   "--rate", "250", "-o", str(profile), "--", *cmd]
            console.print(f"[dim]{name}: profile in {profile}[/]")
    console.print(f"{name}: processing {events:,} events ...")
    result = run_pipeline(
        system=system, pipeline=pipeline, transport=transport, events=events, cmd=cmd,
        env=env, result_path=scratch / f"{name}.json",
        log_path=WORK / "logs" / f"{run_id}-{name}.log", timeout_s=args.timeout,
    )
    if args.sensors != ["monitor"]:
        result.pipeline = f"{pipeline} +{sensors}"  # one report row per sensors mode
    if result.status == "ok":
        console.print(f"{name}: [bold]{result.events_per_s:,.0f} events/s[/] "
                      f"(startup {result.startup_s:.1f} s) {result.extra or ''}")
    else:
        if transport == "kafka":
            done = kafka.committed_events(bootstrap, env["BENCH_APP_ID"], topic)
            result.extra["committed_events"] = done
            result.error_tail = (f"source offsets committed by the group: "
                                 f"{'none' if done is None else f'{done:,}'} of {events:,}\n"
                                 + result.error_tail)
        console.print(f"[red]{name}: {result.status}[/] (log: .bench/logs/{run_id}-{name}.log)")
    if transport == "kafka":
        kafka.delete_topic(bootstrap, topic)
    return result


def _print_eos_cost(results: list[RunResult], console: Console) -> None:
    """Exactly-once throughput against at-least-once, per transport."""
    rate = {(r.transport, r.pipeline): r.events_per_s for r in results
            if r.system == "fluvial" and r.status == "ok"}
    for transport in TRANSPORTS:
        alo, eos = rate.get((transport, "table")), rate.get((transport, "table-eos"))
        if alo and eos:
            console.print(f"exactly-once cost ({transport}): table-eos {eos:,.0f} events/s vs "
                          f"table {alo:,.0f} events/s at least once "
                          f"([bold]{eos / alo:.0%}[/] of the throughput)")


def _print_avro_cost(results: list[RunResult], console: Console) -> None:
    """Avro values (schema registry) against JSON, per pipeline, on Kafka."""
    rate = {r.pipeline: r.events_per_s for r in results
            if r.system == "fluvial" and r.status == "ok" and r.transport == "kafka"}
    for base in ("plain", "table"):
        json_rate, avro_rate = rate.get(base), rate.get(f"{base}-avro")
        if json_rate and avro_rate:
            console.print(f"Avro cost (kafka): {base}-avro {avro_rate:,.0f} events/s vs "
                          f"{base} {json_rate:,.0f} events/s with JSON "
                          f"([bold]{avro_rate / json_rate:.0%}[/] of the throughput)")


def _env(system: str, transport: str, bootstrap: str, bench: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "FLUVIAL_"))}
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    if system == "fluvial":
        env["PYTHONPATH"] = str(REPO)  # the checkout, installed or not
        env["FLUVIAL_BROKER"] = "memory://" if transport == "memory" else f"kafka://{bootstrap}"
    return {**env, **bench}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", type=latency.csv_choices(SYSTEMS), default=list(SYSTEMS),
                   help="comma-separated: fluvial,faust,quix (default: all)")
    p.add_argument("--only", dest="pipelines", type=latency.csv_choices(PIPELINES),
                   default=list(PIPELINES),
                   help="comma-separated pipelines: plain,table,table-eos,plain-avro,"
                        "table-avro (default: all)")
    p.add_argument("--transports", type=latency.csv_choices(TRANSPORTS), default=list(TRANSPORTS),
                   help="comma-separated: memory,kafka (default: both; memory is fluvial only)")
    p.add_argument("--events", type=int, default=0,
                   help="N for every run (default: per system and pipeline, see DEFAULT_EVENTS)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply the default N of every run (e.g. 0.1 for a smoke run)")
    p.add_argument("--accounts", type=int, default=ACCOUNTS,
                   help=f"distinct account ids (table keys) in the orders (default {ACCOUNTS})")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds each run may take, startup included (default 300)")
    p.add_argument("--results", type=Path, default=WORK / "results.json")
    p.add_argument("--sensors", type=latency.csv_choices(SENSORS), default=["monitor"],
                   help="fluvial on memory://, comma-separated: none,monitor,prometheus "
                        "(default: monitor, a worker as it comes)")
    p.add_argument("--no-latency", dest="latency", action="store_false",
                   help="skip the latency runs (bench.latency) that follow the throughput "
                        "runs on Kafka")
    p.add_argument("--latency-faust", action="store_true",
                   help="also measure faust-streaming's latency (it does not keep up at "
                        "10,000 events/s)")
    p.add_argument("--latency-results", type=Path, default=WORK / "latency.json")
    latency.add_arguments(p, prefix="latency-")
    latency.add_settings_argument(p)
    p.add_argument("--profile", action="store_true",
                   help="run fluvial's workers under py-spy (GIL holders only); collapsed "
                        "stacks in .bench/profiles (py-spy from the venv, else PATH)")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
