"""Settings precedence: command line > FLUVIAL_* environment > App() > default."""

from __future__ import annotations

import pytest

import fluvial as faust
from fluvial.exceptions import ImproperlyConfigured
from fluvial.settings import Settings


def test_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_sources("a", {}, environ={}).broker == "kafka://localhost:9092"
    assert Settings.from_sources("a", {"broker": "kafka://x:1"}, environ={}).broker == "kafka://x:1"
    env = {"FLUVIAL_BROKER": "memory://", "FLUVIAL_TOPIC_PARTITIONS": "3"}
    conf = Settings.from_sources("a", {"broker": "kafka://x:1", "topic_partitions": 5}, environ=env)
    assert (conf.broker, conf.topic_partitions) == ("memory://", 3)
    conf = Settings.from_sources("a", {"broker": "kafka://x:1"}, environ=env,
                                 overrides={"broker": "kafka://cli:2"})
    assert conf.broker == "kafka://cli:2"

    monkeypatch.setenv("FLUVIAL_BROKER", "memory://from-env")
    app = faust.App("prec", broker="kafka://localhost")
    assert app.conf.broker == "memory://from-env"
    app.override(broker="memory://from-cli")
    assert app.conf.broker == "memory://from-cli"


def test_broker_list_and_types() -> None:
    conf = Settings.from_sources("a", {"broker": ["kafka://a:1", "kafka://b:2"]}, environ={})
    assert conf.broker == "kafka://a:1;kafka://b:2"
    conf = Settings.from_sources("a", {}, environ={"FLUVIAL_WEB_ENABLED": "yes",
                                                   "FLUVIAL_BROKER_COMMIT_INTERVAL": "0.5"})
    assert conf.web_enabled is True
    assert conf.broker_commit_interval == 0.5


@pytest.mark.parametrize("arguments, environ", [
    ({"processing_guarantee": "twice"}, {}),
    ({"topic_partitions": 0}, {}),
    ({}, {"FLUVIAL_TOPIC_PARTITIONS": "many"}),
    ({"timezone": "Mars/Olympus"}, {}),
    ({"decode_error_policy": "ignore"}, {}),
])
def test_invalid_settings_fail_fast(arguments: dict[str, object], environ: dict[str, str]) -> None:
    with pytest.raises(ImproperlyConfigured):
        Settings.from_sources("a", arguments, environ=environ)


def test_unknown_settings_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    conf = Settings.from_sources("a", {"no_such_setting": 1}, environ={})
    assert conf.extra == {"no_such_setting": 1}
    assert "no_such_setting" in caplog.text


def test_worker_default_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker on Kafka defaults to RocksDB; on the in-process broker, or when a store
    was chosen, the setting stands."""
    from fluvial.runtime.worker import use_worker_defaults

    monkeypatch.delenv("FLUVIAL_STORE", raising=False)
    monkeypatch.delenv("FLUVIAL_BROKER", raising=False)
    kafka_app = faust.App("w1", broker="kafka://127.0.0.1:1")
    table = kafka_app.Table("t")
    use_worker_defaults(kafka_app)
    assert kafka_app.conf.store == "rocksdb://"
    assert table.app.conf.store == "rocksdb://"

    memory_app = faust.App("w2", broker="memory://")
    use_worker_defaults(memory_app)
    assert memory_app.conf.store == "memory://"

    chosen = faust.App("w3", broker="kafka://127.0.0.1:1", store="memory://")
    use_worker_defaults(chosen)
    assert chosen.conf.store == "memory://"
