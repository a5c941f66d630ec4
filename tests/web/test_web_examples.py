"""The README's web examples (examples/), served for real on the in-process broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.test_examples import load

from .conftest import eventually, free_port, served

ROOT = Path(__file__).resolve().parents[2]


def on_memory(module: Any) -> Any:
    app = module.app
    app.override(broker=f"memory://{uuid.uuid4().hex[:8]}", web_bind="127.0.0.1",
                 web_host="127.0.0.1", web_port=free_port())
    return app


async def until_answered(get: Callable[[], Any], expected: Any) -> None:
    """Poll ``get()`` until it returns ``expected`` (events are processed asynchronously)."""
    last: list[Any] = []

    async def check() -> bool:
        last[:] = [await get()]
        return bool(last[0] == expected)

    for _ in range(300):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {expected!r}, last answer {last[0]!r}")


async def test_word_counts_views() -> None:
    module = load("word_counts")
    async with served(on_memory(module)) as client:
        for text in ("the cat", "the dog", "the end"):
            response = await client.post("/sentences/", json={"text": text})
            assert response.status_code == 202
        await until_answered(lambda: _json(client, "/count/the/"), {"the": 3})
        assert (await client.get("/count/dog/")).json() == {"dog": 1}
        assert (await client.get("/table/word_counts/cat/")).json() == 1


async def _json(client: httpx.AsyncClient, path: str) -> Any:
    return (await client.get(path)).json()


async def test_a_fastapi_app_mounted_in_the_worker() -> None:
    module = load("mount_fastapi")
    async with served(on_memory(module)) as client:
        missing = await client.get("/api/sensors/s1")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "no reading from s1"}
        await module.readings.send(key="s1", value=module.Reading(sensor="s1", celsius=21.5))
        await until_answered(lambda: _json(client, "/api/sensors/s1"), {"celsius": 21.5})
        # The worker's own pages are served beside the mounted app.
        assert (await client.get("/healthz")).status_code == 200


async def test_the_app_runs_inside_a_fastapi_service() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUVIAL_")}
    env.update(FLUVIAL_BROKER=f"memory://{uuid.uuid4().hex[:8]}", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.embed_in_fastapi:api",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await eventually(lambda: proc.poll() is not None or _listening(port), 30,
                             "the service to listen")
            assert proc.poll() is None, proc.communicate()[0]
            for _ in range(3):
                assert (await client.post("/click/home")).json() == {"clicked": "home"}
            await until_answered(lambda: _json(client, "/clicks/home"), {"home": 3})
            assert (await client.get("/stream/table/clicks_per_page/home/")).json() == 3
            assert (await client.get("/stream/readyz")).status_code == 200
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    # uvicorn re-raises SIGTERM once it has shut down cleanly.
    assert proc.returncode in (0, -15), output
    assert "Application shutdown complete" in output
    assert "Traceback" not in output


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
