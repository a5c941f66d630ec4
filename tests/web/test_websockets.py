"""Websockets served for real (uvicorn on a loopback port, the ``websockets`` client):
``@app.websocket`` handlers and the live feed of committed table changes."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import fluvial as faust
from fluvial.exceptions import ImproperlyConfigured
from fluvial.web import Web
from tests.test_examples import load

from .conftest import eventually, web_app
from .test_web_examples import on_memory


@asynccontextmanager
async def serving(app: faust.App) -> AsyncIterator[str]:
    """Run ``app`` with its web server; yield its ``ws://`` base URL."""
    async with app.running(), app.web.serving() as url:
        yield "ws://" + url.removeprefix("http://")


def ws_connect(url: str, **kwargs: Any) -> connect:
    return connect(url, proxy=None, open_timeout=10, **kwargs)


async def recv_json(ws: ClientConnection, timeout: float = 20.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


# -- @app.websocket ----------------------------------------------------------------------


async def test_websocket_handler_echoes_and_a_failing_one_closes_1011(
    unique: Callable[[str], str], caplog: pytest.LogCaptureFixture,
) -> None:
    app = web_app(unique("ws-echo"), "memory://" + unique("b"))

    @app.websocket("/echo/{name}/")
    async def echo(web: Web, ws: WebSocket, name: str) -> None:
        assert web is app.web
        await ws.accept()
        async for text in ws.iter_text():
            await ws.send_text(f"{name}: {text}")

    @app.websocket("/broken/")
    async def broken(web: Web, ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive_text()
        raise RuntimeError("the handler broke")

    async with serving(app) as base:
        async with ws_connect(f"{base}/echo/ann/") as ws:
            for text in ("hello", "again"):
                await ws.send(text)
                assert await asyncio.wait_for(ws.recv(), 10) == f"ann: {text}"
        with caplog.at_level(logging.ERROR, logger="fluvial.web.sockets"):
            async with ws_connect(f"{base}/broken/") as ws:
                await ws.send("boom")
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        assert "Websocket handler" in caplog.text and "the handler broke" in caplog.text
        # The worker serves on.
        async with ws_connect(f"{base}/echo/bob/") as ws:
            await ws.send("still here")
            assert await asyncio.wait_for(ws.recv(), 10) == "bob: still here"
        assert app.fatal_error is None


def test_websocket_handler_must_be_callable() -> None:
    app = faust.App("ws-misuse", broker="memory://")
    with pytest.raises(TypeError, match="websocket handler must be an async function"):
        app.websocket("/x/")("not a function")  # type: ignore[arg-type]
    with pytest.raises(ImproperlyConfigured, match="web_live_queue_size must be >= 1"):
        faust.App("ws-misuse", broker="memory://", web_live_queue_size=0).conf  # noqa: B018


# -- the live feed -----------------------------------------------------------------------


def counting_app(name: str, broker_url: str, source: str, **settings: Any
                 ) -> tuple[faust.App, Any, Any, list[str]]:
    app = web_app(name, broker_url, topic_partitions=2, broker_commit_interval=0.1,
                  **settings)
    topic = app.topic(source, key_type=str, value_type=str, partitions=2)
    counts = app.Table("counts", default=int)
    seen: list[str] = []

    @app.agent(topic)
    async def count(stream: faust.Stream[str]) -> None:
        async for key in stream:
            counts[key] += 1
            seen.append(key)

    return app, topic, counts, seen


async def test_live_feed_sends_committed_changes_with_a_key_filter(
    broker_url: str, unique: Callable[[str], str],
) -> None:
    app, topic, _, seen = counting_app(unique("live"), broker_url, unique("in"))
    keys = [f"k{i % 4}" for i in range(200)]
    async with serving(app) as base, ws_connect(f"{base}/table/counts/live/") as every, \
            ws_connect(f"{base}/table/counts/live/?key=k1&key=k3") as some:
        await eventually(lambda: app.web.live.clients("counts") == 2,
                         message="two clients following")
        for i, key in enumerate(keys):
            await topic.send(key=key, value=key)
            if i % 50 == 49:
                await asyncio.sleep(0.15)  # a few checkpoints
        await eventually(lambda: len(seen) == len(keys), message="every event counted")

        async def until_final(ws: ClientConnection, wanted: set[str]
                              ) -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            latest: dict[str, int] = {}
            while {k: latest.get(k) for k in wanted} != {k: 50 for k in wanted}:
                message = await recv_json(ws)
                got.append(message)
                latest[message["key"]] = message["value"]
            return got

        all_messages = await until_final(every, {"k0", "k1", "k2", "k3"})
        some_messages = await until_final(some, {"k1", "k3"})
    assert {m["key"] for m in some_messages} == {"k1", "k3"}
    for messages in (all_messages, some_messages):
        assert all(m["table"] == "counts" and m["deleted"] is False for m in messages)
        # Each key's values only grow: changes arrive in commit order.
        for key in {m["key"] for m in messages}:
            values = [m["value"] for m in messages if m["key"] == key]
            assert values == sorted(values) and len(set(values)) == len(values)
    # Between checkpoints writes of a key coalesce: fewer messages than events.
    assert len(all_messages) <= len(keys)
    assert app.web.live.clients("counts") == 0  # detached on disconnect


async def test_live_feed_of_an_unknown_table_is_a_404(unique: Callable[[str], str]) -> None:
    app, _, _, _ = counting_app(unique("live-404"), "memory://" + unique("b"), unique("in"))
    async with serving(app) as base:
        with pytest.raises(InvalidStatus) as denied:
            async with ws_connect(f"{base}/table/nope/live/"):
                pass
    response = denied.value.response
    assert response.status_code == 404
    assert json.loads(response.body or b"") == {"error": "Unknown table", "table": "nope"}


async def test_live_feed_of_set_and_windowed_tables(unique: Callable[[str], str]) -> None:
    app = web_app(unique("live-kinds"), "memory://" + unique("b"), topic_partitions=1,
                  broker_commit_interval=0.1)
    ops = app.topic(unique("ops"), key_type=str, value_type=str, partitions=1)
    members = app.SetTable("members", partitions=1)
    views = app.Table("views", default=int, partitions=1).tumbling(10)

    @app.agent(ops)
    async def apply(stream: faust.Stream[str]) -> None:
        async for user, op in stream.items():
            verb, _, member = op.partition(":")
            if verb == "add":
                members[user].add(member)
                views[user] += 1
            else:
                members[user].discard(member)

    async with serving(app) as base, ws_connect(f"{base}/table/members/live/") as sets_ws, \
            ws_connect(f"{base}/table/views/live/?key=u") as views_ws:
        await eventually(lambda: app.web.live.clients("views") == 1, message="follower")
        t0 = 1_700_000_000.0
        await ops.send(key="u", value="add:x", timestamp=t0 + 1)
        await ops.send(key="u", value="add:y", timestamp=t0 + 2)
        await ops.send(key="v", value="add:z", timestamp=t0 + 3)
        message = await recv_json(views_ws)
        assert message == {"table": "views", "key": "u", "window": [t0, t0 + 9.9],
                           "value": message["value"], "deleted": False}
        while message["value"] != 2:
            message = await recv_json(views_ws)
        final: dict[str, Any] = {}
        while final.get("u") != ["x", "y"] or final.get("v") != ["z"]:
            message = await recv_json(sets_ws)
            final[message["key"]] = sorted(message["value"])
        await ops.send(key="v", value="discard:z", timestamp=t0 + 4)
        while message["key"] != "v" or not message["deleted"]:
            message = await recv_json(sets_ws)
        assert message == {"table": "members", "key": "v", "value": None, "deleted": True}


async def test_live_feed_from_the_web_thread(unique: Callable[[str], str]) -> None:
    """``web_in_thread``: changes reported in the worker's loop reach clients served
    by the server's own loop."""
    app, topic, _, seen = counting_app(unique("live-thread"), "memory://" + unique("b"),
                                       unique("in"), web_in_thread=True)
    async with serving(app) as base, ws_connect(f"{base}/table/counts/live/?key=a") as ws:
        await eventually(lambda: app.web.live.clients("counts") == 1, message="follower")
        for _ in range(3):
            await topic.send(key="a", value="a")
        value = 0
        while value != 3:
            value = (await recv_json(ws))["value"]
        assert len(seen) == 3


@pytest.mark.parametrize("broker", ["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
async def test_a_slow_client_is_disconnected_and_the_agent_keeps_going(
    broker: str, unique: Callable[[str], str], caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    """A client that reads nothing fills its queue and is disconnected with 1008; a
    client that reads goes on receiving everything; the agent processes every event."""
    broker_url = ("memory://" + unique("b") if broker == "memory"
                  else request.getfixturevalue("kafka_url"))
    app = web_app(unique("live-slow"), broker_url, topic_partitions=1,
                  broker_commit_interval=0.1, web_live_queue_size=500)
    topic = app.topic(unique("in"), key_type=str, value_type=int, partitions=1)
    blobs = app.Table("blobs", partitions=1)
    processed: list[int] = []
    n = 3000

    @app.agent(topic)
    async def store(stream: faust.Stream[int]) -> None:
        async for key, i in stream.items():
            # 8 kB of incompressible text per change: the slow client's socket fills fast.
            blobs[key] = f"{i:08d}" * 1000 if i % 2 else (f"{i:07d}-" * 1000)[::-1]
            processed.append(i)

    # The slow client's socket takes little and its library buffers one message.
    slow_sock = socket.socket()
    slow_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with caplog.at_level(logging.WARNING, logger="fluvial.web.sockets"):
        async with serving(app) as base:
            slow_sock.connect(("127.0.0.1", app.conf.web_port))
            async with ws_connect(f"{base}/table/blobs/live/", sock=slow_sock, max_queue=1,
                                  compression=None) as slow, \
                    ws_connect(f"{base}/table/blobs/live/", max_queue=None,
                               compression=None) as fast:
                await eventually(lambda: app.web.live.clients("blobs") == 2,
                                 message="two clients following")
                received: set[str] = set()

                async def read_fast() -> None:
                    while len(received) < n:
                        received.add((await recv_json(fast, 60))["key"])

                reader = asyncio.ensure_future(read_fast())
                started = time.monotonic()
                for step in range(0, n, 100):
                    for i in range(step, step + 100):
                        await topic.send(key=f"k{i}", value=i)
                    # The fast client keeps up: it has all so far before the next step.
                    await eventually(lambda s=step: len(received) >= s + 100, timeout=60,
                                     message=f"{step + 100} changes received")
                elapsed = time.monotonic() - started
                await eventually(lambda: app.web.live.too_slow == 1, timeout=30,
                                 message="the slow client disconnected")
                await asyncio.wait_for(reader, 60)
                assert app.web.live.clients("blobs") == 0 or \
                    app.web.live.clients("blobs") == 1  # the fast one, until it leaves
                # The slow client reads at last: what was sent, then the close frame.
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(slow.recv(), 30)
    assert sorted(processed) == list(range(n))
    assert len(received) == n
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert "too slow" in caplog.text and "web_live_queue_size" in caplog.text
    print(f"{n} events of 8 kB processed in {elapsed:.2f} s with a slow and a fast client")


async def test_stopping_the_worker_closes_the_feed(unique: Callable[[str], str]) -> None:
    """A stop does not wait for the feed's clients: they get 1012 (service restart)."""
    app, _, _, _ = counting_app(unique("live-stop"), "memory://" + unique("b"), unique("in"))
    async with serving(app) as base:
        ws = await ws_connect(f"{base}/table/counts/live/")
        await eventually(lambda: app.web.live.clients("counts") == 1, message="follower")
        started = time.monotonic()
    stopped = time.monotonic() - started
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert stopped < 3.0
    assert app.web.live.clients("counts") == 0


# -- the README's example ----------------------------------------------------------------


async def test_live_counts_example() -> None:
    module = load("live_counts")
    app = on_memory(module)
    async with serving(app) as base:
        async with ws_connect(f"{base}/table/clicks_per_page/live/") as feed:
            # The example's timer clicks every 0.2 s: changes come in.
            changes = [await recv_json(feed) for _ in range(3)]
        assert all(c["table"] == "clicks_per_page" and c["key"] in
                   {"home", "pricing", "docs", "blog"} and c["value"] >= 1 for c in changes)
        async with ws_connect(f"{base}/shout/") as shout:
            await shout.send("hello")
            assert await asyncio.wait_for(shout.recv(), 10) == "HELLO"
        async with httpx.AsyncClient(base_url="http://" + base.removeprefix("ws://")) as http:
            page = await http.get("/dashboard/")
        assert page.status_code == 200 and "/table/clicks_per_page/live/" in page.text
