"""The ``fluvial`` command line (Faust's ``faust`` command).

``fluvial -A myproj.app:app worker -l info``, ``python myapp.py worker``
(through ``app.main()``), ``send``, ``agents``, ``topics``, ``tables``,
``models``, ``model NAME``, ``reset``, ``status``, ``clean-versions``, ``completion``, and the
app's own ``@app.command`` commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .base import FluvialGroup, State, global_options
from .custom import AppCommand, argument, option
from .listing import agents, model, models, tables, topics
from .maintenance import clean_versions, completion
from .reset import reset
from .send import send
from .status import status
from .worker import worker

if TYPE_CHECKING:
    from ..app import App

__all__ = ["AppCommand", "State", "argument", "cli", "main", "main_for_app", "option"]


@global_options
@click.group(cls=FluvialGroup, context_settings={"help_option_names": ["--help"]})
@click.pass_context
def cli(ctx: click.Context, /, **options: object) -> None:
    """Stream processing on Kafka with the Faust programming model.

    Run `fluvial -A module:app worker` to start a worker; the app's own
    commands (@app.command) are listed once -A names the app.
    """
    # The options were taken by FluvialGroup.parse_args (before the command
    # was looked up, since custom commands live on the app).
    ctx.ensure_object(State)


for _command in (worker, send, agents, topics, tables, models, model, reset, clean_versions,
                 completion, status):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``fluvial`` script and ``python -m fluvial``."""
    cli.main(args=argv, prog_name="fluvial", obj=State())


def main_for_app(app: App, argv: list[str] | None = None) -> None:
    """``app.main()``: the same commands for an app already imported (no ``-A``)."""
    cli.main(args=argv, obj=State(app=app))
