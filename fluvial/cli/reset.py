"""``fluvial reset``: delete this worker's local table state (as ``faust reset``)."""

from __future__ import annotations

import shutil

import click

from .base import State

__all__ = ["reset"]


@click.command()
@click.pass_obj
def reset(state: State) -> None:
    """Delete the local table state of the app (stop its worker first).

    Tables are rebuilt from their changelog topics when the worker starts
    again; the topics themselves are not touched.
    """
    app = state.get_app()
    path = app.conf.table_path
    if not path.exists():
        state.say(f"No local table state at {path}: nothing to delete")
        return
    if not path.is_dir():
        raise click.ClickException(f"{path} is not a directory: not deleting it")
    shutil.rmtree(path)
    state.say(f"Deleted local table state at {path}")
