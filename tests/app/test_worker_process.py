"""A worker process: SIGTERM stops it cleanly with offsets committed; a crash is loud."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

import fluvial as faust
from fluvial.types import TP
from tests.web.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def spawn(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fluvial", "-A", "tests.app.worker_app:app", "worker"],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


async def wait_for_lines(path: Path, n: int, proc: subprocess.Popen[str]) -> None:
    for _ in range(600):
        if len(lines(path)) >= n:
            return
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"worker exited {proc.returncode}:\n{err[-3000:]}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"only {len(lines(path))} of {n} values processed")


@pytest.mark.kafka
async def test_sigterm_commits_processed_offsets(kafka_url: str, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    app_id, topic_name = f"sigterm-{suffix}", f"sigterm-input-{suffix}"
    output = tmp_path / "out.txt"
    port = free_port()
    proc = spawn({"FLUVIAL_BROKER": kafka_url, "TEST_APP_ID": app_id,
                  "TEST_TOPIC": topic_name, "TEST_OUTPUT": str(output), "TEST_FEED": "500",
                  "FLUVIAL_WEB_PORT": str(port), "FLUVIAL_WEB_BIND": "127.0.0.1"})
    try:
        await wait_for_lines(output, 500, proc)
        # The worker serves HTTP by default (web_enabled), from its own event loop.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            info = (await client.get("/")).json()
            assert info["app"] == app_id and info["running"] is True
            assert (await client.get("/readyz")).status_code == 200
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "Worker stopped cleanly" in err
    assert sorted(map(int, lines(output))) == list(range(500))
    probe = faust.App(app_id, broker=kafka_url)
    consumer = probe.transport.create_consumer(app_id)
    await consumer.start()
    try:
        offsets = await consumer.committed([TP(topic_name, 0), TP(topic_name, 1)])
    finally:
        await consumer.stop()
    assert sum(o or 0 for o in offsets.values()) == 500


def test_crash_exits_non_zero_with_traceback(tmp_path: Path) -> None:
    output = tmp_path / "out.txt"
    proc = spawn({"FLUVIAL_BROKER": f"memory://crash-{uuid.uuid4().hex}",
                  "FLUVIAL_WEB_ENABLED": "false",
                  "TEST_OUTPUT": str(output), "TEST_FEED": "10", "TEST_CRASH_ON": "3"})
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    assert "Traceback" in err
    assert "RuntimeError: crash on 3" in err
    assert "crashed" in err
