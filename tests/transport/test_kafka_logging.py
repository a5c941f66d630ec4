"""An unreachable broker is one clear WARNING per interval, not a flood."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from confluent_kafka import KafkaError, Producer

from fluvial.transport.kafka._config import client_config, log_client_error


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and text in r.getMessage()]


def test_refused_connections_are_one_warning_per_interval(
    caplog: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    producer = Producer(client_config(f"127.0.0.1:{port}", {}, {
        "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 10}))
    def failures() -> list[logging.LogRecord]:
        return [r for r in caplog.records
                if f"127.0.0.1:{port}" in r.getMessage() and "Connection refused" in
                r.getMessage() and r.name.endswith("librdkafka")]

    with caplog.at_level(logging.DEBUG, logger="fluvial"):
        deadline = time.monotonic() + 8.0  # well within the 10 s interval
        while len(failures()) < 6 and time.monotonic() < deadline:
            producer.poll(0.05)
    assert len(failures()) >= 6  # librdkafka did retry, several times
    [warning] = warnings_about(caplog, "Cannot reach Kafka broker")
    assert f"Cannot reach Kafka broker 127.0.0.1:{port}/bootstrap" in warning
    assert "Connection refused" in warning and "retrying" in warning


def test_connection_errors_from_the_error_callback_are_throttled_not_hidden(
    caplog: pytest.LogCaptureFixture
) -> None:
    down = KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")
    other = KafkaError(KafkaError._MSG_TIMED_OUT, "Message timed out")
    client = f"consumer-{closed_port()}"
    with caplog.at_level(logging.DEBUG, logger="fluvial"):
        for _ in range(50):
            log_client_error(down, client)
        log_client_error(other, client)
        log_client_error(other, client)
    [down_warning] = warnings_about(caplog, "_ALL_BROKERS_DOWN")
    assert down_warning.startswith(f"Kafka {client}: _ALL_BROKERS_DOWN: 1/1 brokers are down")
    assert len(warnings_about(caplog, "_MSG_TIMED_OUT")) == 2
