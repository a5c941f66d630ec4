"""``fluvial clean-versions`` and ``fluvial completion`` (Faust's commands of those names)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from .base import State

__all__ = ["clean_versions", "completion"]

SHELLS = ("bash", "zsh", "fish")


@click.command("clean-versions")
@click.pass_obj
def clean_versions(state: State) -> None:
    """Delete the data directories of the app's other versions (``{datadir}/v{N}``).

    The app's ``version`` setting names the directory in use; the others are
    what earlier versions left behind. Stop the app's workers on this machine first.
    """
    app = state.get_app()
    current = app.conf.appdir
    root = current.parent
    if not root.is_dir():
        state.say(f"No data directory at {root}: nothing to delete")
        return
    old = sorted(p for p in root.iterdir() if p.is_dir() and _is_version_dir(p)
                 and p.resolve() != current.resolve())
    if not old:
        state.say(f"No other version than {current.name} in {root}: nothing to delete")
        return
    for path in old:
        shutil.rmtree(path)
        state.say(f"Deleted {path}")


def _is_version_dir(path: Path) -> bool:
    return path.name.startswith("v") and path.name[1:].isdigit()


@click.command()
@click.option("--shell", type=click.Choice(SHELLS),
              help="Shell to complete in (default: from $SHELL).")
def completion(shell: str | None) -> None:
    """Print the shell code that completes fluvial's commands; evaluate it in your shell
    (bash: ``eval "$(fluvial completion)"``)."""
    from click.shell_completion import get_completion_class

    from . import cli

    if shell is None:
        shell = Path(os.environ.get("SHELL", "")).name
        if shell not in SHELLS:
            raise click.UsageError(f"Cannot tell the shell from $SHELL={shell!r}: pass "
                                   f"--shell ({', '.join(SHELLS)})")
    completer = get_completion_class(shell)
    assert completer is not None  # one of click's built-in shells
    click.echo(completer(cli, {}, "fluvial", "_FLUVIAL_COMPLETE").source())
