"""The schema_registry_* settings: from App(...) and FLUVIAL_* variables, checked."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import fluvial as faust
from fluvial.exceptions import ImproperlyConfigured

from .messages import Item


class RecordingRegistry(BaseHTTPRequestHandler):
    """A registry that accepts every schema (id 1) and records the requests' auth header."""

    seen: list[tuple[str, str | None]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"id": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recording_registry() -> Iterator[str]:
    RecordingRegistry.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_basic_auth_credentials_reach_the_registry(
    recording_registry: str, unique: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUVIAL_SCHEMA_REGISTRY_BASIC_AUTH", "fluvial:s3cret")
    name = unique("items")
    app = faust.App(unique("auth"), broker="memory://", schema_registry_url=recording_registry)
    app.topic(name, value_type=Item, value_serializer="avro")
    async with app.running():
        pass
    [(path, auth)] = RecordingRegistry.seen
    assert path.startswith(f"/subjects/{name}-value/versions")
    assert auth == "Basic " + base64.b64encode(b"fluvial:s3cret").decode()


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUVIAL_SCHEMA_REGISTRY_URL", "http://registry:8081")
    monkeypatch.setenv("FLUVIAL_SCHEMA_REGISTRY_AUTO_REGISTER", "false")
    monkeypatch.setenv("FLUVIAL_SCHEMA_REGISTRY_SUBJECT_STRATEGY", "record")
    conf = faust.App("env-settings", broker="memory://").conf
    assert conf.schema_registry_url == "http://registry:8081"
    assert conf.schema_registry_auto_register is False
    assert conf.schema_registry_subject_strategy == "record"


async def test_an_unknown_subject_strategy_names_the_choices(
    unique: Callable[[str], str]
) -> None:
    app = faust.App(unique("strategy"), broker="memory://", schema_registry_url="http://x:1",
                    schema_registry_subject_strategy="topicname")
    app.topic(unique("items"), value_type=Item, value_serializer="avro")
    with pytest.raises(ImproperlyConfigured,
                       match="schema_registry_subject_strategy='topicname' is not one of 'topic'"):
        async with app.running():
            pass


async def test_credentials_without_a_colon_are_refused(unique: Callable[[str], str]) -> None:
    app = faust.App(unique("auth"), broker="memory://", schema_registry_url="http://x:1",
                    schema_registry_basic_auth="just-a-token")
    app.topic(unique("items"), value_type=Item, value_serializer="avro")
    with pytest.raises(ImproperlyConfigured, match="must be 'USER:PASSWORD'"):
        async with app.running():
            pass
