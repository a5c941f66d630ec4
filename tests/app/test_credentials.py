"""broker_credentials: librdkafka settings, and SASL/PLAIN against the real broker."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

import fluvial as faust
from fluvial.auth import credentials_config
from fluvial.exceptions import AuthenticationFailed, ImproperlyConfigured
from fluvial.testing.kafka_server import SASL_PASSWORD, SASL_USER

from .conftest import eventually


def test_credentials_become_librdkafka_settings() -> None:
    assert credentials_config(faust.SASLCredentials(username="u", password="p")) == {
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
        "sasl.username": "u", "sasl.password": "p",
    }
    scram = faust.SASLCredentials(username="u", password="p", mechanism="scram-sha-512",
                                  ssl=faust.SSLCredentials(cafile="/ca.pem"))
    assert credentials_config(scram) == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u", "sasl.password": "p", "ssl.ca.location": "/ca.pem",
    }
    oauth = credentials_config(faust.OAuthCredentials(
        token_endpoint_url="https://idp/token", client_id="c", client_secret="s"))
    assert oauth["sasl.mechanism"] == "OAUTHBEARER" and oauth["sasl.oauthbearer.method"] == "oidc"
    assert credentials_config({"security.protocol": "SSL"}) == {"security.protocol": "SSL"}
    assert credentials_config(None) == {}
    with pytest.raises(ImproperlyConfigured, match="mechanism"):
        credentials_config(faust.SASLCredentials(username="u", password="p", mechanism="MD5"))
    with pytest.raises(ImproperlyConfigured, match="broker_credentials"):
        credentials_config("user:password")


@pytest.mark.kafka
async def test_app_over_sasl_plain(kafka_sasl_bootstrap: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    app = faust.App(f"sasl-{suffix}", broker=f"kafka://{kafka_sasl_bootstrap}",
                    broker_credentials=faust.SASLCredentials(username=SASL_USER,
                                                             password=SASL_PASSWORD))
    topic = app.topic(f"sasl-topic-{suffix}", value_type=str, partitions=1)
    seen: list[str] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[str]) -> None:
        async for value in stream:
            seen.append(value)

    async with app.running():
        await topic.send(value="authenticated")
        await eventually(lambda: seen == ["authenticated"], message="message over SASL")


@pytest.mark.kafka
async def test_wrong_password_fails_fast_and_says_so(kafka_sasl_bootstrap: str) -> None:
    app = faust.App("sasl-wrong", broker=f"kafka://{kafka_sasl_bootstrap}",
                    broker_credentials=faust.SASLCredentials(username=SASL_USER,
                                                             password="wrong"))
    started = time.monotonic()
    with pytest.raises(AuthenticationFailed, match="refused the credentials"):
        await asyncio.wait_for(app.transport.start(), 30)
    assert time.monotonic() - started < 5
    await app.close()
