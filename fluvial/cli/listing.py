"""Listing commands: ``agents``, ``topics``, ``tables``, ``models``, ``model NAME``.

Each prints a table, or with the global ``--json`` a JSON list of objects
keyed by the column names (as Faust's ``--json``).
"""

from __future__ import annotations

import click

from .base import State, report_table
from .models import find_model, model_fields, model_help, model_name, registered_models

__all__ = ["agents", "model", "models", "tables", "topics"]

TABLE_HELP_MISSING = 'Missing description: use Table(.., help="str")'


@click.command()
@click.option("--local/--no-local", default=False,
              help="Include agents reading an in-memory channel.")
@click.pass_obj
def agents(state: State, local: bool) -> None:
    """List the app's agents."""
    from ..channels import Topic

    rows = []
    for agent in sorted(state.get_app().agents.values(), key=lambda a: a.name):
        is_topic = isinstance(agent.channel, Topic)
        if is_topic or local:
            topic = agent.channel.label if is_topic else "<LOCAL>"
            rows.append(("@" + agent.name, topic, agent.help or "<N/A>"))
    report_table(state, "Agents", ["name", "topic", "help"], rows)


@click.command()
@click.option("--all", "show_all", is_flag=True, default=False,
              help="Include internal topics (changelogs, repartition and reply topics).")
@click.pass_obj
def topics(state: State, show_all: bool) -> None:
    """List the topics the app declares."""
    from ..channels import Topic

    app = state.get_app()
    seen: dict[str, tuple[str, int, str, bool]] = {}
    for channel in app.topics:
        if not isinstance(channel, Topic) or (channel.internal and not show_all):
            continue
        partitions = channel.partitions or app.conf.topic_partitions
        value_type = channel.schema.value_type
        value = getattr(value_type, "__qualname__", None) or (str(value_type or "") or "-")
        for name in channel.topics:
            seen.setdefault(name, (name, partitions, value, channel.internal))
    headers = ["topic", "partitions", "value_type"] + (["internal"] if show_all else [])
    rows = [row if show_all else row[:3] for _, row in sorted(seen.items())]
    report_table(state, "Topics", headers, rows)


@click.command()
@click.pass_obj
def tables(state: State) -> None:
    """List the app's tables."""
    rows = [(table.name, table.changelog_topic_name, table.help or TABLE_HELP_MISSING)
            for table in sorted(state.get_app().tables, key=lambda t: t.name)]
    report_table(state, "Tables", ["name", "changelog_topic", "help"], rows)


@click.command()
@click.option("--builtins/--no-builtins", default=False, help="Include fluvial's own models.")
@click.pass_obj
def models(state: State, builtins: bool) -> None:
    """List the models (Record classes) the app has imported."""
    state.get_app()  # importing the app registers its models
    rows = [(model_name(m), model_help(m)) for m in registered_models(builtins=builtins)]
    report_table(state, "Models", ["name", "help"], rows)


@click.command()
@click.argument("name")
@click.pass_obj
def model(state: State, name: str) -> None:
    """Show the fields of a model."""
    state.get_app()
    found = find_model(name, origin=state.origin)
    report_table(state, model_name(found), ["field", "type", "default"], model_fields(found))
