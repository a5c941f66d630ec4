"""Faust's web API served for real: pages, views, blueprints, errors, limits."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import fluvial as faust
from fluvial import web
from fluvial.exceptions import ImproperlyConfigured

from .conftest import eventually, free_port, served, web_app


class Item(faust.Record, serializer="json"):
    name: str
    quantity: int


def build(name: str, broker_url: str, **settings: Any) -> faust.App:
    app = web_app(name, broker_url, web_max_request_size=1000, **settings)

    @app.page("/hello/")
    async def hello(view: web.View, request: web.Request) -> web.Response:
        return view.json({"hello": request.query.get("name", "world")})

    @app.page("/items/{name}/")
    class ItemView(web.View):
        async def get(self, request: web.Request, name: str) -> web.Response:
            if name == "missing":
                raise self.NotFound("No such item", item=name)
            return self.json(Item(name=name, quantity=1))

        async def post(self, request: web.Request, name: str) -> web.Response:
            body = await request.json()
            return self.json({"name": request.match_info["name"], "got": body}, status=201)

        async def delete(self, request: web.Request, name: str) -> web.Response:
            raise RuntimeError(f"cannot delete {name}")

    @app.page("/forgot-to-respond/")
    async def forgot(view: web.View, request: web.Request) -> Any:
        return {"not": "a response"}

    @app.page("/text/")
    async def plain(view: web.View, request: web.Request) -> web.Response:
        return view.text("just text")

    return app


async def test_function_and_class_views(unique: Callable[[str], str]) -> None:
    app = build(unique("views"), "memory://" + unique("b"))
    async with served(app) as client:
        response = await client.get("/hello/", params={"name": "faust"})
        assert response.status_code == 200
        assert response.json() == {"hello": "faust"}
        assert response.headers["content-type"] == "application/json"

        response = await client.get("/items/apple/")
        # Records as Faust's JSON writes them (with the ``__faust`` namespace key).
        assert Item.from_data(response.json()) == Item(name="apple", quantity=1)
        assert response.json()["quantity"] == 1

        response = await client.post("/items/pear/", json={"quantity": 3})
        assert response.status_code == 201
        assert response.json() == {"name": "pear", "got": {"quantity": 3}}

        response = await client.get("/text/")
        assert (response.text, response.headers["content-type"].split(";")[0]) == \
            ("just text", "text/plain")
        # A method the view does not define.
        response = await client.put("/items/x/")
        assert response.status_code == 405
        assert "error" in response.json()


async def test_errors_are_json_and_the_worker_runs_on(
    unique: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    app = build(unique("errors"), "memory://" + unique("b"))
    async with served(app) as client:
        response = await client.get("/items/missing/")
        assert response.status_code == 404
        assert response.json() == {"error": "No such item", "item": "missing"}

        response = await client.get("/no/such/page")
        assert response.status_code == 404
        assert response.json() == {"error": "Not Found"}

        response = await client.post("/items/x/", content=b"{not json",
                                     headers={"content-type": "application/json"})
        assert response.status_code == 400
        assert "not valid JSON" in response.json()["error"]

        with caplog.at_level(logging.ERROR):
            response = await client.delete("/items/pear/")
        assert response.status_code == 500
        assert response.json() == {"error": "Internal server error."}
        assert "cannot delete pear" in caplog.text  # the traceback is logged

        # Declared too large, and streamed too large (no Content-Length).
        response = await client.post("/items/x/", content=b"1" * 2000)
        assert response.status_code == 413

        async def chunks() -> Any:
            for _ in range(30):
                yield b"[1,2,3,4,5,6,7,8,9]" * 5

        response = await client.post("/items/x/", content=chunks())
        assert response.status_code == 413
        assert "web_max_request_size" in response.json()["error"]

        with caplog.at_level(logging.ERROR):
            response = await client.get("/forgot-to-respond/")
        assert response.status_code == 500
        assert "returned dict, not a response" in caplog.text

        # The server still answers.
        assert (await client.get("/hello/")).status_code == 200


async def test_blueprint_and_static_files(unique: Callable[[str], str], tmp_path: Path) -> None:
    (tmp_path / "index.txt").write_text("static hello")
    blueprint = web.Blueprint("users")

    @blueprint.route("/{user_id}/", name="detail")
    class UserDetail(web.View):
        async def get(self, request: web.Request, user_id: str) -> web.Response:
            return self.json({"user": user_id, "url": self.url_for("users:detail",
                                                                   user_id=user_id)})

    @blueprint.route("/", name="list")
    async def users(view: web.View, request: web.Request) -> web.Response:
        return view.json(["ann", "bob"])

    blueprint.static("/files", tmp_path)
    app = web_app(unique("bp"), "memory://" + unique("b"))
    blueprint.register(app, url_prefix="/users/")
    async with served(app) as client:
        assert (await client.get("/users/")).json() == ["ann", "bob"]
        detail = (await client.get("/users/ann/")).json()
        assert detail == {"user": "ann", "url": f"{app.conf.canonical_url}/users/ann/"}
        assert (await client.get("/users/files/index.txt")).text == "static hello"


async def test_builtin_pages(unique: Callable[[str], str]) -> None:
    broker = "memory://" + unique("b")
    app = web_app(unique("pages"), broker, topic_partitions=2)
    topic = app.topic(unique("orders"), value_type=Item)
    counts = app.Table("counts", default=int, help="Items counted")

    @app.agent(topic)
    async def count(items: faust.Stream[Item]) -> None:
        async for item in items.group_by(Item.name):
            counts[item.name] += item.quantity

    async with served(app) as client:
        for name in ("apple", "pear", "apple"):
            await topic.send(value=Item(name=name, quantity=2))
        await eventually(lambda: counts.get("apple") == 4, message="apples counted")

        info = (await client.get("/")).json()
        assert info["app"] == app.conf.id
        assert info["tables"] == ["counts"]
        assert info["in_process_broker"] is True
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text

        tables = (await client.get("/table/")).json()
        assert [t["name"] for t in tables] == ["counts"]
        assert tables[0]["help"] == "Items counted"
        assert (await client.get("/table/counts/apple/")).json() == 4
        missing = await client.get("/table/counts/plum/")
        assert missing.status_code == 404
        assert missing.json()["error"] == "Key not found"
        assert (await client.get("/table/nope/apple/")).status_code == 404

        url = app.conf.canonical_url
        assert (await client.get("/router/counts/apple/")).json() == url
        metadata = (await client.get("/router/")).json()
        assert sorted(metadata[url]["counts"]["active"]) == [0, 1]


async def test_table_route_serves_locally_with_one_worker(
    unique: Callable[[str], str]
) -> None:
    app = web_app(unique("route"), "memory://" + unique("b"), topic_partitions=2)
    topic = app.topic(unique("orders"), value_type=Item)
    counts = app.Table("counts", default=int)

    @app.agent(topic)
    async def count(items: faust.Stream[Item]) -> None:
        async for item in items.group_by(Item.name):
            counts[item.name] += item.quantity

    @app.page("/count/{name}/")
    @app.table_route(table=counts, match_info="name")
    async def get_count(view: web.View, request: web.Request, name: str) -> web.Response:
        return view.json({name: counts[name]})

    @app.page("/count/")
    @app.table_route(table=counts, query_param="name")
    async def get_count_q(view: web.View, request: web.Request) -> web.Response:
        name = request.query["name"]
        return view.json({name: counts[name]})

    async with served(app) as client:
        await topic.send(value=Item(name="fig", quantity=5))
        await eventually(lambda: counts.get("fig") == 5, message="figs counted")
        assert (await client.get("/count/fig/")).json() == {"fig": 5}
        assert (await client.get("/count/", params={"name": "fig"})).json() == {"fig": 5}
        missing = await client.get("/count/")
        assert missing.status_code == 400


async def test_a_port_in_use_fails_with_the_setting_to_change(
    unique: Callable[[str], str]
) -> None:
    port = free_port()
    first = faust.App(unique("a"), broker="memory://" + unique("b"), web_port=port,
                      web_bind="127.0.0.1")
    second = faust.App(unique("b"), broker="memory://" + unique("b"), web_port=port,
                       web_bind="127.0.0.1")
    async with first.web.serving():
        with pytest.raises(ImproperlyConfigured, match=rf"127.0.0.1:{port}.*in use.*web_port"):
            async with second.web.serving():
                pass


async def test_cors(unique: Callable[[str], str]) -> None:
    app = build(unique("cors"), "memory://" + unique("b"),
                web_cors_options={"allow_origins": ["https://shop.example"]})
    async with served(app) as client:
        response = await client.get("/hello/", headers={"origin": "https://shop.example"})
        assert response.headers["access-control-allow-origin"] == "https://shop.example"
        response = await client.get("/hello/", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in response.headers


async def test_web_in_thread_serves_and_stops(unique: Callable[[str], str]) -> None:
    app = build(unique("thread"), "memory://" + unique("b"), web_in_thread=True)
    async with served(app) as client:
        assert (await client.get("/hello/")).json() == {"hello": "world"}
        assert (await client.get("/healthz")).status_code == 200
        url = str(client.base_url)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/hello/")


async def test_keep_alive_answers_are_not_held_back(unique: Callable[[str], str]) -> None:
    """Answers on a kept-alive connection go out at once (TCP_NODELAY): without it
    Nagle's algorithm holds each answer's body for the client's delayed ACK, 40 ms."""
    app = build(unique("nodelay"), "memory://" + unique("b"))
    async with served(app) as client:
        await client.get("/hello/")  # the connection is open: only kept-alive requests below
        started = time.perf_counter()
        for _ in range(30):
            assert (await client.get("/hello/")).status_code == 200
        took = time.perf_counter() - started
    assert took < 0.6, f"30 requests on one connection took {took:.2f} s"
