"""Settings: sources and their precedence, type checks, app.conf assignment, Faust's
environment variables, the librdkafka mapping, flow control, discovery, logging."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

import fluvial as faust
from fluvial.exceptions import ImproperlyConfigured
from fluvial.settings import Settings
from fluvial.transport.tuning import client_settings, consumer_settings, producer_settings

from .conftest import eventually


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


# -- type checks, whatever the source ---------------------------------------------------------

@pytest.mark.parametrize("name, value, expected", [
    ("broker_commit_interval", "abc", "a number of seconds"),
    ("stream_buffer_maxsize", 10.5, "an int"),
    ("topic_allow_declare", "maybe", "a bool"),
    ("topic_partitions", True, "an int"),
    ("web_port", "http", "an int"),
    ("store", 42, "a string"),
    ("web_cors_options", ["*"], "a mapping"),
])
def test_every_source_is_type_checked(name: str, value: object, expected: str) -> None:
    def check(source: str, build: Callable[[], object]) -> None:
        with pytest.raises(ImproperlyConfigured) as refused:
            build()
        message = str(refused.value)
        assert name in message and repr(value) in message and expected in message, message
        assert source in message, message

    check("App() argument", lambda: Settings.from_sources("a", {name: value}, environ={}))
    check("command line", lambda: Settings.from_sources("a", {}, environ={},
                                                         overrides={name: value}))
    check("app.conf assignment", lambda: setattr(faust.App("t", broker="memory://").conf,
                                                 name, value))
    if isinstance(value, str):
        env = {f"FLUVIAL_{name.upper()}": value}
        check(f"FLUVIAL_{name.upper()}", lambda: Settings.from_sources("a", {}, environ=env))


def test_strings_are_parsed_never_truthy() -> None:
    conf = Settings.from_sources("a", {"topic_allow_declare": "no", "web_enabled": "off",
                                       "broker_commit_interval": "0.5",
                                       "topic_partitions": "12", "stream_buffer_maxsize": 8.0,
                                       "reply_expires": timedelta(minutes=2)}, environ={})
    assert conf.topic_allow_declare is False and conf.web_enabled is False
    assert conf.broker_commit_interval == 0.5 and conf.topic_partitions == 12
    assert conf.stream_buffer_maxsize == 8 and conf.reply_expires == 120.0
    assert Settings.from_sources("a", {"producer_acks": "all"}, environ={}).producer_acks == -1


# -- app.conf assignment ------------------------------------------------------------------------

async def test_conf_assignable_until_the_app_starts() -> None:
    app = faust.App("assign", broker="memory://", store="rocksdb://")
    conf = app.conf
    app.finalize()  # Faust's testing guide: finalize, then assign
    app.conf.store = "memory://"
    app.conf.topic_partitions = "3"  # parsed as an App() argument would be
    assert conf is app.conf and (conf.store, conf.topic_partitions) == ("memory://", 3)
    assert "store" in conf.given
    app.override(broker="memory://cli")  # re-resolving keeps the assignment
    assert app.conf.store == "memory://"
    with pytest.raises(ImproperlyConfigured, match="no_such"):
        app.conf.no_such = 1
    app.flow_control.resume()
    async with app.running():
        with pytest.raises(ImproperlyConfigured, match=r"app\.conf\.topic_partitions .*started"):
            app.conf.topic_partitions = 5
        assert app.conf.topic_partitions == 3
    app.conf.topic_partitions = 5  # stopped: allowed again
    assert app.conf.topic_partitions == 5


def test_assignment_beats_environment_command_line_beats_assignment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUVIAL_STORE", "rocksdb://")
    app = faust.App("prec2", broker="memory://")
    app.conf.store = "memory://"
    assert app.conf.store == "memory://"
    app.override(store="rocksdb://")
    assert app.conf.store == "rocksdb://"


# -- Faust's environment variables, env_prefix, id_format -------------------------------------

def test_faust_environment_variables() -> None:
    env = {"BROKER_URL": "kafka://faust-env:9092", "WEB_PORT": "7001", "APP_DATADIR": "/data",
           "TOPIC_ALLOW_DECLARE": "false", "PRODUCER_ACKS": "1", "F_WEB_PORT": "1234"}
    conf = Settings.from_sources("a", {"broker": "kafka://arg:1", "web_port": 6000}, environ=env)
    assert (conf.broker, conf.web_port, conf.datadir) == ("kafka://faust-env:9092", 7001, "/data")
    assert conf.topic_allow_declare is False and conf.producer_acks == 1
    # FLUVIAL_* wins over Faust's names.
    both = Settings.from_sources("a", {}, environ={**env, "FLUVIAL_BROKER": "memory://"})
    assert both.broker == "memory://"
    # Faust's F_/FAUST_ defaults stand below the App() argument.
    assert Settings.from_sources("a", {}, environ={"F_WEB_PORT": "1234"}).web_port == 1234
    assert Settings.from_sources("a", {"web_port": 6000},
                                 environ={"FAUST_WEB_PORT": "1234"}).web_port == 6000
    with pytest.raises(ImproperlyConfigured, match="WEB_PORT"):
        Settings.from_sources("a", {}, environ={"WEB_PORT": "http"})


def test_env_prefix() -> None:
    env = {"MYAPP_BROKER_URL": "kafka://prefixed:1", "BROKER_URL": "kafka://plain:1"}
    conf = Settings.from_sources("a", {"env_prefix": "MYAPP_"}, environ=env)
    assert conf.broker == "kafka://prefixed:1"
    conf = Settings.from_sources("a", {}, environ={**env, "APP_ENV_PREFIX": "MYAPP"})
    assert conf.broker == "kafka://prefixed:1"


def test_version_and_id_format() -> None:
    assert Settings.from_sources("shop", {}, environ={}).id == "shop"
    conf = Settings.from_sources("shop", {"version": 2}, environ={})
    assert (conf.id, conf.name, str(conf.appdir)) == ("shop-v2", "shop", "shop-data/v2")
    conf = Settings.from_sources("shop", {"version": 3, "id_format": "{id}.{self.version}"},
                                 environ={})
    assert conf.id == "shop.3"


def test_faust_aliases_and_ignored_settings(caplog: pytest.LogCaptureFixture) -> None:
    assert Settings.from_sources("a", {"url": "kafka://u:1"}, environ={}).broker == "kafka://u:1"
    same = Settings.from_sources("a", {"broker": "kafka://b:1", "broker_consumer": "kafka://b:1"},
                                 environ={})
    assert same.broker == "kafka://b:1"
    with pytest.raises(ImproperlyConfigured, match="broker_producer"):
        Settings.from_sources("a", {"broker": "kafka://b:1", "broker_producer": "kafka://c:1"},
                              environ={})
    conf = Settings.from_sources(f"ignored-{uuid.uuid4().hex}", {
                                 "broker_api_version": "0.10", "agent_supervisor":
                                       "mode.CrashingSupervisor"}, environ={})
    assert conf.agent_supervisor == "stop" and conf.extra == {"broker_api_version": "0.10"}
    assert "broker_api_version" in caplog.text and "negotiates" in caplog.text


def test_ignored_settings_table_in_readme() -> None:
    """Every Faust setting fluvial ignores is in the README's table, with no extra row."""
    from fluvial.settings import IGNORED

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("Faust settings fluvial ignores", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`") for line in section.splitlines()
            if line.startswith("| `")}
    assert rows == set(IGNORED)


# -- librdkafka mapping -----------------------------------------------------------------------

TUNING = {
    "producer_compression_type": "gzip", "producer_max_request_size": 2_000_000,
    "producer_max_batch_size": 65_536, "producer_request_timeout": 60,
    "producer_linger": 0.02, "consumer_max_fetch_size": 4_194_304,
    "consumer_prefetch_size": 16_000_000, "consumer_prefetch_records": 20_000,
    "producer_buffer_memory": 64 * 1024 * 1024,
    "broker_request_timeout": 45, "broker_metadata_max_age": 120,
    "broker_connections_max_idle": 300, "broker_check_crcs": True,
}


def test_tuning_maps_to_librdkafka_names() -> None:
    conf = Settings.from_sources("a", TUNING, environ={})
    assert producer_settings(conf) == {
        "linger.ms": 20, "acks": "all", "compression.type": "gzip",
        "message.max.bytes": 2_000_000, "batch.size": 65_536, "message.timeout.ms": 60_000,
        "queue.buffering.max.kbytes": 65_536}
    # Bytes become librdkafka's kilobytes, rounded up (never below what was asked).
    assert consumer_settings(conf) == {"max.partition.fetch.bytes": 4_194_304,
                                       "queued.max.messages.kbytes": 15_625,
                                       "queued.min.messages": 20_000,
                                       "check.crcs": True}
    assert client_settings(conf) == {"socket.timeout.ms": 45_000,
                                     "metadata.max.age.ms": 120_000,
                                     "connections.max.idle.ms": 300_000}
    # acks=1: librdkafka's idempotence needs acks=all, so it is turned off.
    assert producer_settings(Settings.from_sources("a", {"producer_acks": 1}, environ={})) == {
        "linger.ms": 5, "acks": 1, "enable.idempotence": False}
    with pytest.raises(ImproperlyConfigured, match="producer_acks"):
        Settings.from_sources("a", {"producer_acks": 0, "processing_guarantee": "exactly_once"},
                              environ={})
    with pytest.raises(ImproperlyConfigured, match="producer_compression_type"):
        Settings.from_sources("a", {"producer_compression_type": "brotli"}, environ={})


@pytest.mark.kafka
async def test_tuned_clients_send_and_receive(kafka_url: str) -> None:
    """librdkafka takes every mapped setting (it refuses unknown or bad values at
    creation) and the tuned producer and consumer still carry messages."""
    suffix = uuid.uuid4().hex[:8]
    app = faust.App(f"tuned-{suffix}", broker=kafka_url, **TUNING)
    topic = app.topic(f"tuned-{suffix}", value_type=str, partitions=1)
    seen: list[str] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[str]) -> None:
        async for value in stream:
            seen.append(value)

    async with app.running():
        await topic.send(value="x" * 10_000)
        await eventually(lambda: seen == ["x" * 10_000], message="tuned round trip")
        assert app.group_consumer is not None
        producer_config = app.producer._config  # type: ignore[attr-defined]
        assert producer_config["compression.type"] == "gzip"
        assert producer_config["socket.timeout.ms"] == 45_000
        assert app.transport.consumer_config["max.partition.fetch.bytes"] == 4_194_304  # type: ignore[attr-defined]


# -- flow control, discovery, logging ---------------------------------------------------------

async def test_flow_control_gates_fetching() -> None:
    app = faust.App("flow", broker=f"memory://flow-{uuid.uuid4().hex[:6]}")
    topic = app.topic("flow-topic", value_type=int, partitions=1)
    seen: list[int] = []

    @app.agent(topic)
    async def read(stream: faust.Stream[int]) -> None:
        async for value in stream:
            seen.append(value)

    assert not app.flow_control.is_active()  # as in Faust: the worker resumes it
    async with app.running():
        assert app.flow_control.is_active()
        await topic.send(value=1)
        await eventually(lambda: seen == [1], message="first event")
        app.flow_control.suspend()
        await asyncio.sleep(0.3)  # the fetch loop is now waiting
        await topic.send(value=2)
        await asyncio.sleep(0.5)
        assert seen == [1], "fetched while suspended"
        app.flow_control.resume()
        await eventually(lambda: seen == [1, 2], message="event after resume")


async def test_stream_processing_timeout_reports_a_stuck_event(
        caplog: pytest.LogCaptureFixture) -> None:
    app = faust.App("stuck", broker=f"memory://stuck-{uuid.uuid4().hex[:6]}",
                    stream_processing_timeout=0.3)
    topic = app.topic("stuck-topic", value_type=int, partitions=1)
    release = asyncio.Event()
    seen: list[int] = []

    @app.agent(topic)
    async def slow(stream: faust.Stream[int]) -> None:
        async for value in stream:
            seen.append(value)
            if value == 1:
                await release.wait()

    async with app.running():
        await topic.send(value=0)
        await eventually(lambda: seen == [0], message="first event")
        await asyncio.sleep(0.6)
        assert "Stream processing stuck" not in caplog.text  # events that move: no error
        await topic.send(value=1)
        await eventually(lambda: "Stream processing stuck" in caplog.text, timeout=5,
                         message="the stuck-event error")
        assert "stuck-topic[0]@1" in caplog.text
        await asyncio.sleep(0.5)  # several more checks
        assert caplog.text.count("Stream processing stuck") == 1  # once per event
        release.set()


def test_discover_imports_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "discproj"
    (package / "tests").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(
        "import fluvial as faust\n"
        "app = faust.App('disc', broker='memory://', autodiscover=True, origin='discproj')\n")
    (package / "orders").mkdir()
    (package / "orders" / "__init__.py").write_text("")
    (package / "orders" / "agents.py").write_text(
        "from discproj.app import app\n"
        "@app.agent(app.topic('orders'))\n"
        "async def process(stream):\n"
        "    async for _ in stream:\n"
        "        pass\n")
    (package / "tests" / "__init__.py").write_text("raise RuntimeError('tests imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from discproj.app import app  # type: ignore[import-not-found]

    assert "process" not in " ".join(app.agents)
    imported = app.discover()
    assert "discproj.orders.agents" in imported
    assert not any(".tests" in name for name in imported)
    assert any(name.endswith("process") for name in app.agents)

    lonely = faust.App("lonely", broker="memory://", autodiscover=True)
    with pytest.raises(ImproperlyConfigured, match="origin"):
        lonely.discover()


def test_logging_config_and_handlers() -> None:
    from fluvial.runtime.worker import apply_logging_settings

    handler = logging.NullHandler()
    app = faust.App("logs", broker="memory://", loghandlers=[handler], logging_config={
        "loggers": {"fluvial.test.configured": {"level": "ERROR"}}})
    try:
        apply_logging_settings(app)
        assert logging.getLogger("fluvial.test.configured").level == logging.ERROR
        assert handler in logging.getLogger().handlers
    finally:
        logging.getLogger().removeHandler(handler)
    with pytest.raises(ImproperlyConfigured, match="loghandlers"):
        faust.App("logs2", broker="memory://", loghandlers=["stderr"]).conf  # noqa: B018


class CountingTable(faust.Table):
    """A Table subclass, as Faust apps pass with App(Table=...)."""


def test_class_override_settings() -> None:
    app = faust.App("classes", broker="memory://", Table=CountingTable,
                    Agent="fluvial.agents:Agent")
    assert isinstance(app.Table("counts", default=int), CountingTable)

    @app.agent(app.topic("t"))
    async def process(stream: faust.Stream[object]) -> None:
        async for _ in stream:
            pass

    assert isinstance(process, faust.Agent)
    wrong = faust.App("classes2", broker="memory://", Table=dict)
    with pytest.raises(ImproperlyConfigured, match=r"Table=.*subclass of fluvial's Table"):
        wrong.Table("counts")
    missing = faust.App("classes3", broker="memory://", Topic="no_such_module:Topic")
    with pytest.raises(ImproperlyConfigured, match="cannot import 'no_such_module'"):
        missing.topic("t")


#: faust-streaming's settings (faust/types/settings/settings.py).
FAUST_SETTINGS = """
autodiscover datadir tabledir debug env_prefix id_format origin timezone version agent_supervisor
broker broker_consumer broker_producer broker_api_version broker_check_crcs broker_client_id
broker_commit_every broker_commit_interval broker_commit_livelock_soft_timeout broker_credentials
broker_heartbeat_interval broker_max_poll_interval broker_max_poll_records
broker_rebalance_timeout broker_request_timeout broker_session_timeout broker_metadata_max_age
broker_connections_max_idle ssl_context consumer_api_version consumer_max_fetch_size
consumer_auto_offset_reset consumer_group_instance_id key_serializer value_serializer
logging_config loghandlers producer_acks producer_api_version producer_compression_type
producer_linger producer_linger_ms producer_max_batch_size producer_max_request_size
producer_partitioner producer_request_timeout producer_threaded reply_create_topic
reply_expires reply_to reply_to_prefix processing_guarantee stream_buffer_maxsize
stream_processing_timeout stream_publish_on_commit stream_recovery_delay stream_wait_empty
store table_cleanup_interval table_key_index_size table_standby_replicas topic_allow_declare
topic_disable_leader topic_partitions topic_replication_factor cache canonical_url web
web_bind web_cors_options web_enabled web_host web_in_thread web_port web_ssl_context
web_transport worker_redirect_stdouts worker_redirect_stdouts_level Agent ConsumerScheduler
Event Schema Stream Table SetTable GlobalTable SetGlobalTable TableManager Serializers Worker
PartitionAssignor LeaderAssignor Router Topic HttpClient Monitor stream_ack_cancelled_tasks
stream_ack_exceptions url blocking_timeout recovery_consistency_check store_check_exists
crash_app_on_aerospike_exception aerospike_retries_on_exception
aerospike_sleep_seconds_between_retries_on_exception
""".split()  # noqa: SIM905 - a word list, as Faust documents them


def test_every_faust_setting_is_honoured_or_ignored_with_a_reason() -> None:
    from fluvial.settings import IGNORED

    honoured = {f for f in Settings.__dataclass_fields__} | {"url", "broker_consumer",
                                                              "broker_producer"}
    unhandled = [name for name in FAUST_SETTINGS if name not in honoured and name not in IGNORED]
    assert unhandled == []
    assert not set(IGNORED) & honoured  # never both
