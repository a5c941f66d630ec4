"""Fixtures shared by every test: a real Kafka for tests marked ``@pytest.mark.kafka``,
a real schema registry for the schema codecs' tests.

``KAFKA_BOOTSTRAP_SERVERS`` points the tests at an existing cluster; otherwise
the session shares (or starts) the broker recorded in ``./.kafka`` and stops it
at the end if it started it and nobody else is using it.
``SCHEMA_REGISTRY_URL`` points them at an existing Confluent-compatible
registry; otherwise the session starts Apicurio Registry (recorded in
``./.schema-registry``) when a test first needs it, and stops it at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluvial.testing.kafka_server import KafkaServer
from fluvial.testing.schema_registry import SchemaRegistryServer

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers (``host:port[,...]``) of a running Kafka."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    server = KafkaServer(REPO_ROOT / ".kafka")
    bootstrap = server.acquire()
    try:
        yield bootstrap
    finally:
        server.release()


@pytest.fixture(scope="session")
def kafka_url(kafka_bootstrap: str) -> str:
    """The broker URL fluvial apps take: ``kafka://host:port[,...]``."""
    return "kafka://" + kafka_bootstrap


@pytest.fixture(scope="session")
def kafka_sasl_bootstrap(kafka_bootstrap: str) -> str:
    """The SASL_PLAINTEXT listener (PLAIN, ``SASL_USER``/``SASL_PASSWORD`` of the harness).

    With ``KAFKA_BOOTSTRAP_SERVERS``, set ``KAFKA_SASL_BOOTSTRAP_SERVERS`` for it too.
    """
    external = os.environ.get("KAFKA_SASL_BOOTSTRAP_SERVERS")
    if external:
        return external
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("set KAFKA_SASL_BOOTSTRAP_SERVERS to test SASL on an external cluster")
    sasl = KafkaServer(REPO_ROOT / ".kafka").sasl_bootstrap
    if sasl is None:
        pytest.skip("the running test broker predates its SASL listener: "
                    "python -m fluvial.testing.kafka_server stop, then rerun")
    return sasl


@pytest.fixture(scope="session")
def kafka_sasl_ssl(kafka_bootstrap: str) -> tuple[str, Path]:
    """The SASL_SSL listener (PLAIN and OAUTHBEARER) and the PEM file of the CA that
    signed its certificate.

    With ``KAFKA_BOOTSTRAP_SERVERS``, set ``KAFKA_SASL_SSL_BOOTSTRAP_SERVERS`` and
    ``KAFKA_SASL_SSL_CAFILE`` for it too (same user and password as the harness's).
    """
    external = os.environ.get("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS")
    if external:
        cafile = os.environ.get("KAFKA_SASL_SSL_CAFILE")
        if not cafile:
            pytest.skip("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS is set without KAFKA_SASL_SSL_CAFILE")
        return external, Path(cafile)
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("set KAFKA_SASL_SSL_BOOTSTRAP_SERVERS and KAFKA_SASL_SSL_CAFILE to test "
                    "SASL_SSL on an external cluster")
    server = KafkaServer(REPO_ROOT / ".kafka")
    bootstrap = server.sasl_ssl_bootstrap
    if bootstrap is None:
        pytest.skip("the running test broker predates its SASL_SSL listener: "
                    "python -m fluvial.testing.kafka_server stop, then rerun")
    return bootstrap, server.ca_file


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    """The Confluent-compatible API of a running schema registry."""
    external = os.environ.get("SCHEMA_REGISTRY_URL")
    if external:
        yield external
        return
    server = SchemaRegistryServer(REPO_ROOT / ".schema-registry")
    started = server.status() is None  # one left running (CLI start) is reused, not stopped
    url = server.start()
    try:
        yield url
    finally:
        if started:
            server.stop()
