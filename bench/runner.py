"""Run one pipeline script as a subprocess, with a deadline, and read back its result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# After the result is written the worker shuts itself down; give it this long.
SHUTDOWN_GRACE_S = 20.0
POLL_S = 0.1
TAIL_LINES = 25


@dataclass
class RunResult:
    """One (transport, pipeline, system) measurement, as printed and written to results.json."""

    system: str
    pipeline: str
    transport: str
    events: int
    status: str  # "ok", "timeout" or "failed"
    events_per_s: float | None = None
    processing_s: float | None = None  # first to N-th event
    wall_s: float | None = None  # process start to N-th event, so startup included
    startup_s: float | None = None  # process start to first event
    shutdown_s: float | None = None  # N-th event to process exit
    store: str = "-"
    version: str = "?"
    error_tail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def run_pipeline(
    *,
    system: str,
    pipeline: str,
    transport: str,
    events: int,
    cmd: list[str],
    env: dict[str, str],
    result_path: Path,
    log_path: Path,
    timeout_s: float,
) -> RunResult:
    """Start ``cmd``, wait for its result file or its death or the deadline, never longer."""
    result_path.unlink(missing_ok=True)
    base = RunResult(system=system, pipeline=pipeline, transport=transport, events=events,
                     status="failed")
    with log_path.open("wb") as log:
        started = time.time()
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = started + timeout_s
        while not result_path.exists():
            if proc.poll() is not None:
                base.error_tail = log_tail(log_path, f"exited with code {proc.returncode} "
                                        "before reporting a result")
                return base
            if time.time() > deadline:
                stop_group(proc)
                base.status = "timeout"
                base.error_tail = log_tail(log_path, f"no result after {timeout_s:.0f} s")
                return base
            time.sleep(POLL_S)
        report = json.loads(result_path.read_text())
        shutdown_s = wait_exit(proc, report["written_ts"])

    first, last = report["first_ts"], report["last_ts"]
    processing = last - first
    known = {"system", "pipeline", "events", "first_ts", "last_ts", "written_ts", "store",
             "version"}
    return RunResult(
        system=system,
        pipeline=pipeline,
        transport=transport,
        events=report["events"],
        status="ok",
        # N events span N-1 gaps between the first and the N-th.
        events_per_s=(report["events"] - 1) / processing if processing > 0 else None,
        processing_s=processing,
        wall_s=last - started,
        startup_s=first - started,
        shutdown_s=shutdown_s,
        store=report.get("store", "-"),
        version=report.get("version", "?"),
        extra={k: v for k, v in report.items() if k not in known},
    )


def wait_exit(proc: subprocess.Popen[bytes], written_ts: float) -> float | None:
    """Let the worker shut down by itself; return how long that took, or None if we killed it."""
    try:
        proc.wait(timeout=SHUTDOWN_GRACE_S)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        return None
    return time.time() - written_ts


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group we started, then SIGKILL it if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


def log_tail(log_path: Path, why: str) -> str:
    lines = log_path.read_text(errors="replace").splitlines()[-TAIL_LINES:]
    return why + (":\n" + "\n".join(lines) if lines else " (no output)")
