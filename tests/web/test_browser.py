"""A real browser on the live feed: headless Chromium opens the example's dashboard,
whose script follows the table's websocket feed and renders the counts.

Skipped where Chromium is not installed (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.test_examples import load

from .test_web_examples import on_memory

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")


class DevTools:
    """The Chrome DevTools protocol over one page's websocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.last_id = 0

    async def call(self, method: str, **params: Any) -> Any:
        self.last_id += 1
        call_id = self.last_id
        await self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if message.get("id") == call_id:
                assert "error" not in message, message
                return message.get("result")


@asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[DevTools]:
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=600,400",
        "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        port = None
        while port is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert line, "Chromium exited before listening"
            if "DevTools listening on ws://" in line:
                port = line.split("ws://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
        async with httpx.AsyncClient() as http:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        page = next(t for t in targets if t["type"] == "page")
        async with connect(page["webSocketDebuggerUrl"], proxy=None, max_size=None) as ws:
            yield DevTools(ws)
    finally:
        proc.terminate()
        await proc.wait()


async def test_the_dashboard_renders_the_live_feed_in_chromium(tmp_path: Path) -> None:
    module = load("live_counts")
    app = on_memory(module)
    async with app.running(), app.web.serving() as url, \
            chromium(tmp_path / "profile") as browser:
        await browser.call("Page.enable")
        await browser.call("Page.navigate", url=f"{url}/dashboard/")
        rendered: dict[str, int] = {}
        for _ in range(100):
            await asyncio.sleep(0.1)
            result = await browser.call("Runtime.evaluate", expression=(
                "[...document.querySelectorAll('#counts tr')]"
                ".map(r => [r.cells[0].textContent, r.cells[1].textContent])"),
                returnByValue=True)
            rendered = {page: int(count) for page, count in result["result"]["value"]}
            if len(rendered) == 4:
                break
        shot = await browser.call("Page.captureScreenshot", format="png")
        table = dict(module.clicks_per_page.items())
    (tmp_path / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))
    assert set(rendered) == {"home", "pricing", "docs", "blog"}
    # Committed values, so never ahead of the table the agent writes.
    assert all(1 <= count <= table[page] for page, count in rendered.items()), (rendered, table)
    assert base64.b64decode(shot["data"]).startswith(b"\x89PNG")
