"""The forwarder against real servers: a request beyond its pool is shed, not queued."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from fluvial import web
from fluvial.web.routing import MAX_IN_FLIGHT

from .conftest import eventually, served, web_app


async def test_forwards_beyond_the_pool_are_answered_503_at_once(
    unique: Callable[[str], str]
) -> None:
    owner = web_app(unique("owner"), "memory://" + unique("b"))
    release = asyncio.Event()
    waiting: list[int] = []

    @owner.page("/slow/")
    async def slow(view: web.View, request: web.Request) -> web.Response:
        waiting.append(1)
        await release.wait()
        return view.json({"from": "owner"})

    front = web_app(unique("front"), "memory://" + unique("c"))

    @front.page("/slow/")
    async def forward(view: web.View, request: web.Request) -> web.Response:
        return await view.web.forwarder.forward(owner.conf.canonical_url, request)

    extra = 10
    async with served(owner), served(front) as one, httpx.AsyncClient(
            base_url=str(one.base_url), timeout=30,
            limits=httpx.Limits(max_connections=MAX_IN_FLIGHT + extra)) as client:
        requests = [asyncio.create_task(client.get("/slow/"))
                    for _ in range(MAX_IN_FLIGHT + extra)]
        await eventually(lambda: len(waiting) == MAX_IN_FLIGHT,
                         message="a pool's worth of requests at the owner")
        # The rest are answered at once, not after a wait for a free connection.
        await eventually(lambda: sum(r.done() for r in requests) == extra, timeout=1.0,
                         message="the requests beyond the pool answered")
        shed = [r.result() for r in requests if r.done()]
        assert {(r.status_code, r.headers["retry-after"]) for r in shed} == {(503, "1")}
        release.set()
        answers = await asyncio.gather(*requests)
        assert sum(r.status_code == 200 for r in answers) == MAX_IN_FLIGHT
        # The slots are free again.
        assert (await client.get("/slow/")).json() == {"from": "owner"}
