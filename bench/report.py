"""Print the results as tables and write them to results.json."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.runner import RunResult

SYSTEM_NAMES = {"fluvial": "fluvial", "faust": "faust-streaming", "quix": "quixstreams"}
PEERS = ("faust", "quix")


def ratios(results: list[RunResult]) -> dict[str, dict[str, float]]:
    """fluvial's events/s over each peer's, per pipeline, on the same transport (Kafka)."""
    rate = {(r.transport, r.pipeline, r.system): r.events_per_s
            for r in results if r.status == "ok"}
    out: dict[str, dict[str, float]] = {}
    for (transport, pipeline, system), ours in rate.items():
        if system != "fluvial" or ours is None:
            continue
        for peer in PEERS:
            theirs = rate.get((transport, pipeline, peer))
            if theirs:
                out.setdefault(f"{pipeline}/{transport}", {})[f"fluvial/{peer}"] = ours / theirs
    return out


def print_report(results: list[RunResult], console: Console | None = None) -> None:
    console = console or Console()
    rows = sorted({(r.transport, r.pipeline) for r in results},
                  key=lambda tp: (tp[0] != "kafka", tp[1]))
    by_key = {(r.transport, r.pipeline, r.system): r for r in results}
    summary = ratios(results)

    matrix = Table(title="events/s (first to N-th event; higher is better)")
    matrix.add_column("pipeline")
    for system in SYSTEM_NAMES.values():
        matrix.add_column(system, justify="right")
    for peer in PEERS:
        matrix.add_column(f"fluvial/{SYSTEM_NAMES[peer]}", justify="right")
    for transport, pipeline in rows:
        cells = [f"{pipeline} ({transport})"]
        for system in SYSTEM_NAMES:
            run = by_key.get((transport, pipeline, system))
            cells.append(_rate_cell(run))
        for peer in PEERS:
            ratio = summary.get(f"{pipeline}/{transport}", {}).get(f"fluvial/{peer}")
            cells.append(f"{ratio:.1f}x" if ratio else "-")
        matrix.add_row(*cells)
    console.print(matrix)

    detail = Table(title="runs")
    for name in ("transport", "pipeline", "system", "version", "store", "N", "events/s",
                 "processing s", "startup s", "wall s", "shutdown s", "peak RSS MB",
                 "status"):
        detail.add_column(name, justify="right" if name[0].isupper() or " " in name
                          or name == "events/s" else "left")
    for r in results:
        detail.add_row(
            r.transport, r.pipeline, SYSTEM_NAMES.get(r.system, r.system), r.version, r.store,
            f"{r.events:,}", _rate_cell(r), _secs(r.processing_s), _secs(r.startup_s),
            _secs(r.wall_s), _secs(r.shutdown_s), _mb(r.extra.get("max_rss_mb")), r.status,
        )
    console.print(detail)
    console.print("wall s = process start to N-th event (startup included); "
                  "shutdown s = N-th event to process exit ('-' = had to be killed).")
    for r in results:
        if r.status != "ok":
            console.print(f"\n[bold red]{r.system} {r.pipeline} on {r.transport}: {r.status}[/]")
            console.print(r.error_tail, markup=False, highlight=False)


def write_results(path: Path, results: list[RunResult], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        **meta,
        "runs": [r.as_json() for r in results],
        "ratios": ratios(results),
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


def _rate_cell(run: RunResult | None) -> str:
    if run is None:
        return "-"
    if run.status != "ok" or run.events_per_s is None:
        return run.status
    return f"{run.events_per_s:,.0f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
