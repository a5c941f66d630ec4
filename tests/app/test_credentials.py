"""broker_credentials: librdkafka settings, Faust's signatures, secrets kept out of
reprs and errors, and SASL/PLAIN, SASL_SSL and OAUTHBEARER against the real broker."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
import uuid
from pathlib import Path

import pytest

import fluvial as faust
from fluvial.auth import credentials_config
from fluvial.exceptions import AuthenticationFailed, ImproperlyConfigured, TransportError
from fluvial.testing.kafka_server import SASL_PASSWORD, SASL_USER, make_tls_files
from fluvial.transport.kafka import KafkaTransport

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


# -- Faust's signatures, ssl.SSLContext, secrets ---------------------------------------------

def _ca_pem_der(config: dict[str, object]) -> list[bytes]:
    text = str(config["ssl.ca.pem"])
    blocks = [b + "-----END CERTIFICATE-----\n" for b in text.split("-----END CERTIFICATE-----")
              if "BEGIN" in b]
    return [ssl.PEM_cert_to_DER_cert(b.strip() + "\n") for b in blocks]


def test_ssl_context_becomes_librdkafka_settings(tmp_path: Path) -> None:
    make_tls_files(tmp_path)
    cafile = str(tmp_path / "ca.pem")
    ctx = ssl.create_default_context(cafile=cafile)
    config = credentials_config(faust.SSLCredentials(ctx))
    assert config["security.protocol"] == "SSL"
    # The CA loaded into the context, as PEM: the same certificate as the file's.
    assert _ca_pem_der(config) == [ssl.PEM_cert_to_DER_cert((tmp_path / "ca.pem").read_text())]
    assert "ssl.endpoint.identification.algorithm" not in config

    sasl = credentials_config(faust.SASLCredentials(username="u", password="p",
                                                    mechanism="SCRAM-SHA-256", ssl_context=ctx))
    assert sasl["security.protocol"] == "SASL_SSL"
    assert sasl["sasl.mechanism"] == "SCRAM-SHA-256"
    assert sasl["ssl.ca.pem"] == config["ssl.ca.pem"]

    # Faust's App(broker_credentials=ctx) and a context without checks.
    loose = ssl.create_default_context(cafile=cafile)
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE
    assert credentials_config(loose) == {
        "security.protocol": "SSL", "enable.ssl.certificate.verification": False,
        "ssl.endpoint.identification.algorithm": "none"}
    # Only the system's CAs (nothing loaded): librdkafka finds the system store itself.
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert credentials_config(faust.SSLCredentials(bare))["ssl.ca.location"] == "probe"
    # Files for mutual TLS (a context's client certificate cannot be read back).
    files = credentials_config(faust.SSLCredentials(ctx, certfile="/c.pem", keyfile="/k.pem"))
    assert (files["ssl.certificate.location"], files["ssl.key.location"]) == ("/c.pem", "/k.pem")
    assert "ssl.ca.pem" in files
    assert credentials_config(faust.SSLCredentials(cafile=cafile))["ssl.ca.location"] == cafile


def test_oauth_credentials_take_a_callback_or_a_token_provider() -> None:
    def callback(config: str) -> tuple[str, float]:
        return "token", 1.0

    config = credentials_config(faust.OAuthCredentials(oauth_cb=callback))
    assert config["sasl.mechanism"] == "OAUTHBEARER" and config["oauth_cb"] is callback
    assert "sasl.oauthbearer.method" not in config

    expires = int(time.time()) + 600
    jwt = _unsigned_jwt(expires)

    class Provider:  # aiokafka's AbstractTokenProvider, as Faust users write it
        async def token(self) -> str:
            return jwt

    oauth_cb = credentials_config(faust.OAuthCredentials(oauth_cb=Provider()))["oauth_cb"]
    assert oauth_cb("") == (jwt, float(expires))  # the expiry read from the JWT

    with pytest.raises(ImproperlyConfigured, match="oauth_cb"):
        credentials_config(faust.OAuthCredentials())


def test_secrets_never_shown() -> None:
    secret = "hunter2-secret"
    credentials = faust.SASLCredentials(username="alice", password=secret)
    assert secret not in repr(credentials) and "alice" in repr(credentials)
    app = faust.App("masked", broker="memory://", broker_credentials=credentials)
    assert secret not in repr(app.conf)
    mapping = faust.App("masked2", broker="memory://",
                        broker_credentials={"sasl.password": secret, "sasl.username": "alice"})
    assert secret not in repr(mapping.conf) and "alice" in repr(mapping.conf)
    oauth = faust.OAuthCredentials(token_endpoint_url="https://idp", client_id="c",
                                   client_secret=secret)
    assert secret not in repr(oauth)
    # Credentials given in the wrong container: the error does not echo them.
    with pytest.raises(ImproperlyConfigured) as refused:
        credentials_config(f"alice:{secret}")
    assert secret not in str(refused.value)
    with pytest.raises(ImproperlyConfigured, match="'password', 'username'") as refused:
        credentials_config({"username": "alice", "password": secret})
    assert secret not in str(refused.value)


@pytest.mark.parametrize("url", [
    "kafka://alice:hunter2-secret@broker:9092",
    "kafka://a:9092;kafka://alice:hunter2-secret@b:9092",
    "alice:hunter2-secret@broker:9092",
])
def test_credentials_in_broker_url_are_refused(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="carries credentials") as refused:
        faust.App("url-secret", broker=url).conf  # noqa: B018
    message = str(refused.value)
    assert "hunter2-secret" not in message
    assert "broker_credentials=SASLCredentials(username='alice'" in message
    with pytest.raises(ImproperlyConfigured, match="carries credentials"):
        KafkaTransport(url)


# -- SASL_SSL against the test broker (its CA made by the harness) ---------------------------

def _unsigned_jwt(expires: int) -> str:
    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none'})}.{b64({'sub': SASL_USER, 'exp': expires})}."


async def _round_trip(broker: str, credentials: object, name: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    app = faust.App(f"{name}-{suffix}", broker=broker, broker_credentials=credentials)
    topic = app.topic(f"{name}-topic-{suffix}", value_type=str, partitions=1)
    seen: list[str] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[str]) -> None:
        async for value in stream:
            seen.append(value)

    async with app.running():
        await topic.send(value="over tls")
        await eventually(lambda: seen == ["over tls"], message=f"message over {name}")


@pytest.mark.kafka
@pytest.mark.parametrize("form", ["ssl_context", "cafile"])
async def test_app_over_sasl_ssl(kafka_sasl_ssl: tuple[str, Path], form: str) -> None:
    bootstrap, cafile = kafka_sasl_ssl
    if form == "ssl_context":  # Faust's usual SASL_SSL set-up
        credentials = faust.SASLCredentials(
            username=SASL_USER, password=SASL_PASSWORD,
            ssl_context=ssl.create_default_context(cafile=str(cafile)))
    else:
        credentials = faust.SASLCredentials(
            username=SASL_USER, password=SASL_PASSWORD,
            ssl=faust.SSLCredentials(cafile=str(cafile)))
    await _round_trip(f"kafka://{bootstrap}", credentials, f"sasl-ssl-{form}")


@pytest.mark.kafka
async def test_app_over_oauthbearer_with_a_token_provider(
        kafka_sasl_ssl: tuple[str, Path]) -> None:
    bootstrap, cafile = kafka_sasl_ssl
    calls: list[float] = []

    class Provider:
        async def token(self) -> str:
            calls.append(time.time())
            return _unsigned_jwt(int(time.time()) + 3600)

    credentials = faust.OAuthCredentials(
        oauth_cb=Provider(), ssl_context=ssl.create_default_context(cafile=str(cafile)))
    await _round_trip(f"kafka://{bootstrap}", credentials, "oauth")
    assert calls, "the token provider was never asked"


@pytest.mark.kafka
async def test_sasl_ssl_with_an_unknown_ca_is_refused(kafka_sasl_ssl: tuple[str, Path],
                                                      tmp_path: Path) -> None:
    bootstrap, _ = kafka_sasl_ssl
    make_tls_files(tmp_path)  # another CA: the broker's certificate is not signed by it
    app = faust.App("sasl-ssl-wrong-ca", broker=f"kafka://{bootstrap}",
                    broker_credentials=faust.SASLCredentials(
                        username=SASL_USER, password=SASL_PASSWORD,
                        ssl_context=ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))))
    app.transport.connect_timeout_s = 3.0  # type: ignore[attr-defined]
    with pytest.raises(TransportError):
        await asyncio.wait_for(app.transport.start(), 30)
    await app.close()
