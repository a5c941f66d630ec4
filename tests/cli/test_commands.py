"""``send``, ``worker``, custom commands and settings precedence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import fluvial
from fluvial.cli import AppCommand, main_for_app, option
from fluvial.transport.memory import MemoryBroker
from tests.web.conftest import free_port

from .conftest import Invoke, new_app

REPO_ROOT = Path(__file__).resolve().parents[2]


class CliOrder(fluvial.Record):
    """An order in the send tests."""

    id: str
    amount: int = 0


def values(url: str, topic: str) -> list[Any]:
    return [json.loads(m.value) if m.value is not None else None
            for m in MemoryBroker.for_url(url).messages(topic)]


# -- send ------------------------------------------------------------------------


def test_send_json_value_and_key_to_a_topic(invoke: Invoke, memory_url: str) -> None:
    app = new_app(broker=memory_url)
    result = invoke("send", "orders", '{"id": "a1", "amount": 3}', "-k", "alice", app=app)
    assert result.exit_code == 0, result.output
    [message] = MemoryBroker.for_url(memory_url).messages("orders")
    assert message.key == b"alice"  # the raw key serializer
    assert json.loads(message.value or b"") == {"id": "a1", "amount": 3}
    assert result.stdout.strip() == (
        f"sent to orders partition {message.partition} offset {message.offset}"
    )
    # On the in-process broker the message dies with the command: it says so.
    assert "lives in this process only" in result.stderr


def test_send_text_that_is_not_json_as_a_string(invoke: Invoke, memory_url: str) -> None:
    app = new_app(broker=memory_url)
    assert invoke("send", "words", "hello there", app=app).exit_code == 0
    assert values(memory_url, "words") == ["hello there"]
    app = new_app(broker=memory_url)
    assert invoke("send", "raw-words", "not json", "--value-serializer", "raw",
                  app=app).exit_code == 0
    [message] = MemoryBroker.for_url(memory_url).messages("raw-words")
    assert message.value == b"not json"


def test_send_repeat_with_json_output(invoke: Invoke, memory_url: str) -> None:
    app = new_app(broker=memory_url, topic_partitions=1)
    result = invoke("--json", "send", "ticks", "1", "--repeat", "3", app=app)
    assert result.exit_code == 0, result.output
    metas = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(m["topic"], m["partition"], m["offset"]) for m in metas] == [
        ("ticks", 0, 0), ("ticks", 0, 1), ("ticks", 0, 2)]
    assert values(memory_url, "ticks") == [1, 1, 1]


def test_send_to_a_partition(invoke: Invoke, memory_url: str) -> None:
    app = new_app(broker=memory_url, topic_partitions=4)
    assert invoke("send", "parts", "7", "--partition", "2", app=app).exit_code == 0
    assert [m.partition for m in MemoryBroker.for_url(memory_url).messages("parts")] == [2]


def test_send_to_an_agent_by_function_name(invoke: Invoke, memory_url: str) -> None:
    app = new_app(broker=memory_url)

    @app.agent(app.topic("greetings"))
    async def greet(stream: Any) -> None:
        async for _ in stream:
            pass

    result = invoke("send", "@greet", '"Hello Faust"', app=app)
    assert result.exit_code == 0, result.output
    assert values(memory_url, "greetings") == ["Hello Faust"]


def test_send_to_an_unknown_agent_is_a_usage_error(invoke: Invoke, memory_url: str) -> None:
    result = invoke("send", "@nobody", "1", app=new_app(broker=memory_url))
    assert result.exit_code == 2
    assert "No agent named 'nobody'" in result.output


def test_send_with_value_type_builds_the_model(invoke: Invoke, memory_url: str) -> None:
    app = new_app(broker=memory_url)
    result = invoke("send", "orders", '{"id": "b2"}', "--value-type", "CliOrder", app=app)
    assert result.exit_code == 0, result.output
    [value] = values(memory_url, "orders")
    assert value["id"] == "b2"
    assert value["amount"] == 0  # the model's default: the value went through CliOrder
    bad = invoke(
        "send", "orders", '{"amount": 1}', "-V", "CliOrder", app=new_app(broker=memory_url)
    )
    assert bad.exit_code == 2
    assert "cannot decode" in bad.output


@pytest.mark.kafka
def test_send_to_real_kafka(invoke: Invoke, kafka_url: str, kafka_bootstrap: str) -> None:
    from confluent_kafka import Consumer

    topic = f"cli-send-{uuid.uuid4().hex[:8]}"
    app = new_app(broker="memory://unused", topic_partitions=1)
    missing = invoke("--broker", kafka_url, "send", topic, '{"n": 1}', app=app)
    assert missing.exit_code == 2
    assert f"Topic {topic!r} does not exist on {kafka_url}" in missing.output
    assert "--create" in missing.output
    result = invoke("--broker", kafka_url, "--json", "send", topic, '{"n": 1}', "-k", "k1",
                    "--create", app=new_app(broker="memory://unused", topic_partitions=1))
    assert result.exit_code == 0, result.output
    assert "in-process" not in result.stderr
    meta = json.loads(result.stdout.splitlines()[-1])
    assert (meta["topic"], meta["partition"], meta["offset"]) == (topic, 0, 0)

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": topic,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        message = None
        while message is None and time.monotonic() < deadline:
            polled = consumer.poll(0.5)
            if polled is not None and polled.error() is None:
                message = polled
        assert message is not None, "the message never arrived"
        assert message.key() == b"k1"
        assert json.loads(message.value() or b"") == {"n": 1}
    finally:
        consumer.close()


# -- custom commands -----------------------------------------------------------------


def test_custom_command_runs_with_its_options(invoke: Invoke) -> None:
    result = invoke("-A", "tests.cli.sample_app:app", "hello", "--times", "2", "--name", "cli")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["hello cli from cli-sample via memory://cli-sample"] * 2
    plain = invoke("-A", "tests.cli.sample_app:app", "plain")
    assert plain.output.strip() == "plain ran"


def test_custom_command_that_sends_is_flushed(invoke: Invoke, memory_url: str) -> None:
    app = new_app(broker=memory_url)
    events = app.topic("events")

    @app.command(option("--count", type=int, default=1))
    async def produce(self: AppCommand, count: int) -> None:
        """Send COUNT events."""
        for i in range(count):
            await events.send(value={"i": i})
        self.say(self.tabulate([(count,)], headers=["sent"]))

    result = invoke("--json", "produce", "--count", "3", app=app)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"sent": 3}]
    assert sorted(v["i"] for v in values(memory_url, "events")) == [0, 1, 2]


def test_command_with_unknown_decorator_arguments_is_refused() -> None:
    app = new_app(broker="memory://")
    with pytest.raises(fluvial.exceptions.ImproperlyConfigured, match="unknown arguments"):
        @app.command(colour="blue")
        async def painted() -> None:
            pass


# -- settings precedence ---------------------------------------------------------------


def test_broker_precedence_cli_over_env_over_app(invoke: Invoke,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    app = new_app(broker="memory://from-app")
    assert invoke("agents", app=app).exit_code == 0
    assert app.conf.broker == "memory://from-app"

    monkeypatch.setenv("FLUVIAL_BROKER", "memory://from-env")
    app = new_app(broker="memory://from-app")
    assert invoke("agents", app=app).exit_code == 0
    assert app.conf.broker == "memory://from-env"

    app = new_app(broker="memory://from-app")
    assert invoke("--broker", "memory://from-cli", "agents", app=app).exit_code == 0
    assert app.conf.broker == "memory://from-cli"


def test_settings_options_reach_app_conf(invoke: Invoke, tmp_path: Path) -> None:
    app = new_app(broker="memory://")
    result = invoke("--datadir", str(tmp_path), "--web-port", "7123", "tables", app=app)
    assert result.exit_code == 0, result.output
    assert app.conf.datadir == str(tmp_path)
    assert app.conf.web_port == 7123


def test_app_module_sees_cli_settings_at_import(invoke: Invoke, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    module = f"cli_import_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "import fluvial\n"
        "app = fluvial.App('import-app', broker='memory://from-app')\n"
        "BROKER_AT_IMPORT = app.conf.broker\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("FLUVIAL_BROKER", "memory://from-env")
    result = invoke("--broker", "memory://from-cli", "-A", f"{module}:app", "tables")
    assert result.exit_code == 0, result.output
    imported = sys.modules[module]
    assert imported.BROKER_AT_IMPORT == "memory://from-cli"
    assert imported.app.conf.broker == "memory://from-cli"
    monkeypatch.delitem(sys.modules, module)


# -- worker and app.main() ---------------------------------------------------------------


def test_worker_in_process_stops_after_duration(invoke: Invoke, memory_url: str) -> None:
    app = new_app(broker=memory_url)
    port = free_port()
    result = invoke("worker", "--duration", "0.2", "--web-port", str(port), app=app)
    assert result.exit_code == 0, result.output
    assert app.conf.web_port == port


def test_main_for_app_exits_like_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    app = new_app(broker="memory://")
    app.Table("scores", help="Scores.")
    with pytest.raises(SystemExit) as exit_info:
        main_for_app(app, ["--json", "tables"])
    assert exit_info.value.code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == ["scores"]


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLUVIAL_")}
    environ["PYTHONPATH"] = str(REPO_ROOT)
    environ.update(env)
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)


def test_worker_subprocess_prints_banner_and_exits_0() -> None:
    proc = _run(["-m", "fluvial", "-A", "tests.cli.sample_app:app", "worker", "--duration", "2",
                 "--web-bind", "127.0.0.1", "--web-port", str(free_port())],
                FLUVIAL_BROKER="memory://")
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert "app 'cli-sample'" in output
    assert "IN-PROCESS broker (memory://)" in output


def test_python_app_py_runs_app_main() -> None:
    proc = _run(["tests/cli/sample_app.py", "--json", "agents"])
    assert proc.returncode == 0, proc.stderr
    # Run as a script, the agent is named after the file (as Faust does).
    assert json.loads(proc.stdout) == [
        {"name": "@sample_app.greet", "topic": "greetings", "help": "Count greetings per name."}]


# -- reset ----------------------------------------------------------------------------------


def test_reset_deletes_local_table_state(invoke: Invoke, tmp_path: Path) -> None:
    app = new_app(broker="memory://")
    result = invoke("--datadir", str(tmp_path), "reset", app=app)
    assert result.exit_code == 0, result.output
    assert "nothing to delete" in result.output
    tables = app.conf.table_path
    (tables / "counts-0").mkdir(parents=True)
    (tables / "counts-0" / "data").write_bytes(b"x")
    result = invoke("--datadir", str(tmp_path), "reset", app=app)
    assert result.exit_code == 0, result.output
    assert f"Deleted local table state at {tables}" in result.output
    assert not tables.exists()
    assert tmp_path.exists()  # only the tables' directory goes


# -- send checks what it sends ----------------------------------------------------------


def test_send_refuses_a_value_a_worker_could_not_decode(invoke: Invoke, memory_url: str) -> None:
    app = new_app(broker=memory_url)
    app.topic("orders", value_type=CliOrder)
    missing_field = invoke("send", "orders", '{"amount": 3}', app=app)
    assert missing_field.exit_code == 2
    assert "is not a value a worker of orders can read (value_type CliOrder)" in (
        missing_field.output)
    assert "--raw" in missing_field.output
    typo = invoke("send", "orders", '{"id": "a1", "amount": 3', app=app)
    assert typo.exit_code == 2
    assert "is not valid JSON" in typo.output
    assert MemoryBroker.for_url(memory_url).messages("orders") == []
    # --raw sends the text as it is, unchecked.
    raw = invoke("send", "orders", '{"id": "a1", "amount": 3', "--raw", app=app)
    assert raw.exit_code == 0, raw.output
    [message] = MemoryBroker.for_url(memory_url).messages("orders")
    assert message.value == b'{"id": "a1", "amount": 3'


def test_send_checks_the_key_too(invoke: Invoke, memory_url: str) -> None:
    app = new_app(broker=memory_url)
    app.topic("counts", key_type=int, value_type=int)
    bad = invoke("send", "counts", "1", "--key", "one", app=app)
    assert bad.exit_code == 2
    assert "is not a key a worker of counts can read (key_type int)" in bad.output
    good = invoke("send", "counts", "1", "--key", "7", app=app)
    assert good.exit_code == 0, good.output


def test_global_options_after_the_command(invoke: Invoke, tmp_path: Path) -> None:
    app = new_app(broker="memory://")
    app.Table("scores", help="Scores.")
    result = invoke("tables", "--json", app=app)
    assert result.exit_code == 0, result.output
    assert [row["name"] for row in json.loads(result.stdout)] == ["scores"]
    datadir = tmp_path / "shop"
    result = invoke("worker", "--duration", "0.1", "--datadir", str(datadir), "--without-web",
                    app=app)
    assert result.exit_code == 0, result.output
    assert app.conf.datadir == str(datadir)
