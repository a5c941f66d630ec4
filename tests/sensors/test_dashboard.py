"""The group view: ``fluvial status`` and the live dashboard, from two workers on Kafka.

The dashboard is loaded in headless Chromium; its figures must change while
the workers process events, and a screenshot is saved under the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.browser import CHROMIUM, chromium

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def spawn_worker(broker: str, app_id: str, port: int,
                 datadir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fluvial", "-A", "tests.sensors.observed_app:app",
         "--datadir", str(datadir), "worker", "-l", "warning", "--web-port", str(port),
         "--web-bind", "127.0.0.1", "--web-host", "127.0.0.1"],
        cwd=ROOT, env={**os.environ, "FLUVIAL_BROKER": broker, "OBSERVED_APP_ID": app_id},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


async def group_of(url: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(timeout=5) as client:
        try:
            response = await client.get(f"{url}/stats/group/")
        except httpx.HTTPError:
            return None
    return response.json() if response.status_code == 200 else None


@pytest.fixture
async def two_workers(kafka_url: str,
                      tmp_path: Path) -> AsyncIterator[tuple[str, list[str]]]:
    """Two workers of one app on Kafka, both with their partitions, processing, and
    standby replicas of each other's table partitions."""
    app_id = f"observed-{uuid.uuid4().hex[:8]}"
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    procs = [spawn_worker(kafka_url, app_id, port, tmp_path / f"worker-{i}")
             for i, port in enumerate(ports)]
    try:
        for _ in range(600):
            for proc in procs:
                if proc.poll() is not None:
                    raise AssertionError(f"a worker exited:\n{proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
            group = await group_of(urls[0])
            if (group and len(group["workers"]) == 2
                    and all(w["active"] and w["standby"] and w["events_total"] > 0
                            for w in group["workers"])):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"the two workers did not share the partitions: {group}")
        yield app_id, urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_status(url: str, *extra: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "fluvial", "-A", "tests.sensors.observed_app:app", *extra,
         "status", "--url", url],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "FLUVIAL_BROKER": "memory://"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.kafka
async def test_status_and_dashboard_show_the_whole_group(
    two_workers: tuple[str, list[str]], tmp_path: Path
) -> None:
    app_id, urls = two_workers
    topic = f"{app_id}-clicks"
    # fluvial status --json: both workers, the topic's 4 partitions between them.
    group = json.loads(run_status(urls[1], "--json"))
    assert sorted(w["url"] for w in group["workers"]) == sorted(urls)
    held = sorted(p for w in group["workers"] for p in w["active"].get(topic, []))
    assert held == [0, 1, 2, 3]
    assert all(w["agents"]["count_clicks"]["events"] > 0 for w in group["workers"])
    assert all(f"{app_id}-counts" in w["tables"] for w in group["workers"])
    # Each worker keeps a standby of the table partitions the other one owns.
    for worker in group["workers"]:
        assert set(worker["standby"]).isdisjoint(worker["active"][topic])
        assert set(worker["standby"]) | set(worker["active"][topic]) == {0, 1, 2, 3}
    # The rich view names the workers and the agent.
    text = run_status(urls[0])
    assert f"App {app_id!r}: 2 worker(s)" in text
    assert all(url in text for url in urls) and "count_clicks" in text

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    async with chromium(profile, width=1400, height=900) as page:
        await page.call("Page.enable")
        await page.call("Page.navigate", url=f"{urls[0]}/dashboard/")

        async def figures() -> tuple[str, str, int]:
            return (await page.evaluate("document.getElementById('t-events').textContent"),
                    await page.evaluate("document.getElementById('t-workers').textContent"),
                    await page.evaluate("document.querySelectorAll('#lag tbody tr').length"))

        first: tuple[str, str, int] = ("-", "-", 0)
        for _ in range(100):
            first = await figures()
            if first[0] not in ("-", None):
                break
            await asyncio.sleep(0.1)
        assert first[0] not in ("-", None), "the dashboard never showed figures"
        later = first
        for _ in range(100):
            await asyncio.sleep(0.2)
            later = await figures()
            if later[0] != first[0]:
                break
        # Live: the count of events processed moved on without reloading the page.
        assert later[0] != first[0]
        assert int(later[0].replace(",", "")) > int(first[0].replace(",", ""))
        assert later[1] == "2"
        assert later[2] == 4  # a lag row per partition of the topic
        agents = await page.evaluate(
            "[...document.querySelectorAll('#agents tbody td:first-child')]"
            ".map(td => td.textContent)")
        assert agents == ["count_clicks"]
        await asyncio.sleep(float(os.environ.get("DASHBOARD_WAIT", "2")))
        shot = tmp_path / "dashboard.png"
        shot.write_bytes(await page.screenshot())
    assert shot.stat().st_size > 10_000
    print(f"dashboard screenshot: {shot}")
    if os.environ.get("DASHBOARD_SCREENSHOT"):
        # Refreshing the README's image: DASHBOARD_SCREENSHOT=docs/dashboard.png
        Path(os.environ["DASHBOARD_SCREENSHOT"]).write_bytes(shot.read_bytes())
