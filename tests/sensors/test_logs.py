"""Structured logs: ``--log-format json`` / ``log_format='json'``, one JSON object per line."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import fluvial as faust
from fluvial.exceptions import ImproperlyConfigured
from fluvial.logs import JsonFormatter

ROOT = Path(__file__).resolve().parents[2]


def test_worker_logs_json_lines_with_the_event_position() -> None:
    app_id = f"jsonlogs-{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(
        [sys.executable, "-m", "fluvial", "-A", "tests.sensors.observed_app:app", "worker",
         "--log-format", "json", "--duration", "3", "--without-web"],
        cwd=ROOT, env={**os.environ, "FLUVIAL_BROKER": f"memory://{app_id}",
                       "OBSERVED_APP_ID": app_id},
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    entries = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert entries, proc.stderr[-3000:]
    # Every log record is JSON: no text log line is left beside them.
    assert not [line for line in proc.stderr.splitlines() if line.startswith("[")]
    for entry in entries:
        assert {"time", "level", "logger", "message", "process"} <= entry.keys()
    first_clicks = [e for e in entries if e["logger"] == "observed"]
    assert first_clicks, "the agent logged nothing"
    for entry in first_clicks:
        assert entry["level"] == "INFO"
        assert entry["message"] == f"first click on {entry['page']}"
        assert entry["topic"] == f"{app_id}-clicks"
        assert isinstance(entry["partition"], int) and isinstance(entry["offset"], int)
    assert any(e["message"] == "Worker stopped cleanly" for e in entries)


def test_json_formatter_keeps_the_traceback() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("bad value")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed: %s", ("here",), sys.exc_info())
    entry = json.loads(formatter.format(record))
    assert entry["message"] == "failed: here" and entry["level"] == "ERROR"
    assert "ValueError: bad value" in entry["exception"]
    assert "topic" not in entry  # not logged while processing an event


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="log_format='xml' is not one of"):
        faust.App("bad-logs", broker="memory://", log_format="xml").finalize()
