"""A real browser on the live feed: headless Chromium opens the example's dashboard,
whose script follows the table's websocket feed and renders the counts.

Skipped where Chromium is not installed (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from tests.test_examples import load

from .browser import CHROMIUM, chromium
from .test_web_examples import on_memory

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")


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
