"""Listing commands, help, version and user errors of the ``fluvial`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fluvial._version import __version__

from .conftest import Invoke, new_app

SAMPLE = "tests.cli.sample_app:app"


def as_json(output: str) -> list[dict[str, object]]:
    rows = json.loads(output)
    assert isinstance(rows, list)
    return rows


def test_agents_as_json_excludes_local_agents_unless_asked(invoke: Invoke) -> None:
    result = invoke("-A", SAMPLE, "--json", "agents")
    assert result.exit_code == 0, result.output
    assert as_json(result.output) == [
        {"name": "@tests.cli.sample_app.greet", "topic": "greetings",
         "help": "Count greetings per name."},
    ]
    result = invoke("-A", SAMPLE, "--json", "agents", "--local")
    names = {row["name"]: row["topic"] for row in as_json(result.output)}
    assert names == {"@tests.cli.sample_app.greet": "greetings",
                     "@tests.cli.sample_app.local_helper": "<LOCAL>"}


def test_agents_as_a_table(invoke: Invoke) -> None:
    result = invoke("-A", SAMPLE, "agents")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Agents"
    row = next(line for line in lines if "@tests.cli.sample_app.greet" in line)
    assert "greetings" in row and "Count greetings per name." in row


def test_topics_hide_internal_topics_unless_all(invoke: Invoke) -> None:
    result = invoke("-A", SAMPLE, "--json", "topics")
    assert as_json(result.output) == [
        {"topic": "greetings", "partitions": 2, "value_type": "Greeting"},
    ]
    result = invoke("-A", SAMPLE, "--json", "topics", "--all")
    rows = {row["topic"]: row for row in as_json(result.output)}
    changelog = rows["cli-sample-greeting-counts-changelog"]
    assert changelog["internal"] is True
    assert rows["greetings"]["internal"] is False


def test_tables(invoke: Invoke) -> None:
    result = invoke("-A", SAMPLE, "--json", "tables")
    assert as_json(result.output) == [
        {"name": "greeting-counts", "changelog_topic": "cli-sample-greeting-counts-changelog",
         "help": "Greetings per name."},
    ]
    table = invoke("-A", SAMPLE, "tables").output
    assert "greeting-counts" in table and "cli-sample-greeting-counts-changelog" in table


def test_models_lists_the_apps_records(invoke: Invoke) -> None:
    result = invoke("-A", SAMPLE, "--json", "models")
    rows = {row["name"]: row["help"] for row in as_json(result.output)}
    assert rows["tests.cli.sample_app.Greeting"] == "Somebody to greet, some number of times."


def test_model_shows_fields_by_short_or_full_name(invoke: Invoke) -> None:
    expected = [
        {"field": "name", "type": "str", "default": "*"},
        {"field": "times", "type": "int", "default": "1"},
    ]
    for name in ("Greeting", "tests.cli.sample_app.Greeting"):
        result = invoke("-A", SAMPLE, "--json", "model", name)
        assert result.exit_code == 0, result.output
        assert as_json(result.output) == expected
    table = invoke("-A", SAMPLE, "model", "Greeting").output
    assert table.splitlines()[0] == "tests.cli.sample_app.Greeting"
    assert any("times" in line and "int" in line and "1" in line for line in table.splitlines())


def test_unknown_model_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("-A", SAMPLE, "model", "Greting")
    assert result.exit_code == 2
    assert "No model 'Greting'" in result.output
    assert "tests.cli.sample_app.Greeting" in result.output  # did you mean


def test_help_lists_builtin_and_custom_commands(invoke: Invoke) -> None:
    result = invoke("-A", SAMPLE, "--help")
    assert result.exit_code == 0, result.output
    for command in ("worker", "send", "agents", "topics", "tables", "models", "model",
                    "hello", "plain"):
        assert f"  {command} " in result.output
    assert "Say hello from the app." in result.output
    worker_help = invoke("worker", "--help").output
    assert "--duration SECONDS" in worker_help and "--loglevel" in worker_help


def test_version(invoke: Invoke) -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"fluvial {__version__}"


def test_unknown_module_is_a_usage_error_naming_it(invoke: Invoke) -> None:
    result = invoke("-A", "tests.cli.no_such_module:app", "agents")
    assert result.exit_code == 2
    assert "cannot import module 'tests.cli.no_such_module'" in result.output
    assert "Traceback" not in result.output


def test_unknown_attribute_is_a_usage_error_naming_it(invoke: Invoke) -> None:
    result = invoke("-A", "tests.cli.sample_app:nope", "agents")
    assert result.exit_code == 2
    assert "module 'tests.cli.sample_app' has no attribute 'nope'" in result.output


def test_attribute_that_is_not_an_app(invoke: Invoke) -> None:
    result = invoke("-A", "tests.cli.sample_app:Greeting", "agents")
    assert result.exit_code == 2
    assert "is a type, not a fluvial App" in result.output


def test_module_alone_means_its_app_attribute(invoke: Invoke) -> None:
    result = invoke("-A", "tests.cli.sample_app", "--json", "tables")
    assert result.exit_code == 0, result.output
    assert as_json(result.output)[0]["name"] == "greeting-counts"


def test_app_from_environment(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUVIAL_APP", SAMPLE)
    result = invoke("--json", "tables")
    assert result.exit_code == 0, result.output
    assert as_json(result.output)[0]["name"] == "greeting-counts"


def test_no_app_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("agents")
    assert result.exit_code == 2
    assert "No app given" in result.output


def test_fluvial_error_exits_1_with_its_message(invoke: Invoke) -> None:
    app = new_app(broker="memory://")
    result = invoke("--broker", "bogus://x", "send", "orders", "1", app=app)
    assert result.exit_code == 1
    assert "Unknown broker URL scheme 'bogus'" in result.output
    assert "Traceback" not in result.output


def test_autodiscover_from_the_app_option(invoke: Invoke, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """As Faust's CLI: -A sets origin, and autodiscover=True imports the package's modules."""
    package = tmp_path / "autoproj"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import fluvial as faust\n"
        "app = faust.App('autoproj', broker='memory://', autodiscover=True)\n")
    (package / "agents.py").write_text(
        "from autoproj import app\n"
        "@app.agent(app.topic('auto-orders'))\n"
        "async def discovered(stream):\n"
        "    async for _ in stream:\n"
        "        pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = invoke("-A", "autoproj", "--json", "agents")
    assert result.exit_code == 0, result.output
    names = [row["name"] for row in json.loads(result.output)]
    assert any(name.endswith("discovered") for name in names), names
