"""The ``fluvial`` command group: global options, finding the app, output.

The app module named by ``-A`` is imported only after the command line is
parsed, with ``--broker``/``--datadir``/``--web-port`` already exported as
``FLUVIAL_*`` variables, so an app that reads ``app.conf`` at import time
sees the command-line values; they are then applied with ``app.override``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from .._version import __version__
from ..exceptions import FluvialError

if TYPE_CHECKING:
    from ..app import App

__all__ = [
    "LOGLEVELS",
    "FluvialGroup",
    "State",
    "find_app",
    "render_table",
    "report_table",
]

#: Accepted ``-l`` values (Faust's short names too) and the logging level each means.
LOGLEVELS: Mapping[str, str] = {
    "crit": "critical",
    "critical": "critical",
    "error": "error",
    "warn": "warning",
    "warning": "warning",
    "info": "info",
    "debug": "debug",
}

#: Command-line options that become settings: option name -> setting name.
SETTING_OPTIONS = ("broker", "datadir", "web_port")

APP_ENVVAR = "FLUVIAL_APP"


@dataclass
class State:
    """What the global options said; ``ctx.obj`` of every command."""

    app: App | None = None
    app_path: str | None = None
    loglevel: str | None = None
    json: bool = False
    quiet: bool = False
    debug: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    #: The module the app was found in (``-A``), used to shorten model names.
    origin: str | None = None
    workdir: str | None = None

    def configure(self, params: Mapping[str, Any]) -> None:
        """Take the parsed global options (idempotent)."""
        if params.get("app"):
            self.app_path = params["app"]
        if params.get("loglevel"):
            self.loglevel = LOGLEVELS[params["loglevel"].lower()]
        self.json = bool(params.get("json"))
        self.quiet = bool(params.get("quiet"))
        self.debug = bool(params.get("debug"))
        if self.debug and self.loglevel is None:
            self.loglevel = "debug"
        self.settings = {k: params[k] for k in SETTING_OPTIONS if params.get(k) is not None}
        if params.get("workdir") and self.workdir is None:
            self.workdir = str(Path(params["workdir"]).absolute())
            os.chdir(self.workdir)
        if self.app is not None:
            self.app.override(**self.settings)

    @property
    def has_app(self) -> bool:
        return self.app is not None or bool(self.app_path)

    def get_app(self) -> App:
        """The app: the one bound by ``app.main()``, or imported from ``-A``."""
        if self.app is None:
            if not self.app_path:
                raise click.UsageError(
                    "No app given: use -A module:attribute (or set FLUVIAL_APP), "
                    "or run the app's own script (python myapp.py worker)"
                )
            # Exported before the import: settings read at import time see them.
            for name, value in self.settings.items():
                os.environ[f"FLUVIAL_{name.upper()}"] = str(value)
            self.app, self.origin = find_app(self.app_path)
            self.app.override(**self.settings)
            # As Faust's CLI: -A names the app's origin; autodiscover scans from it.
            if self.app.conf.origin is None:
                self.app.conf.origin = self.origin
            if self.app.conf.autodiscover:
                self.app.discover()
        return self.app

    def setup_logging(self) -> None:
        """Log at ``-l LEVEL`` (commands other than ``worker``, which sets up its own)."""
        if self.loglevel is not None:
            from ..runtime.worker import setup_logging

            setup_logging(self.loglevel)

    def say(self, message: str, *, err: bool = False) -> None:
        if not self.quiet:
            click.echo(message, err=err)


# -- finding the app -----------------------------------------------------------


def find_app(path: str) -> tuple[App, str]:
    """Import the app named ``module:attr``, ``module`` (attribute ``app``), or ``file.py``.

    Returns the app and the name of the module it was found in. User errors
    (no such module or attribute, not an App) raise :class:`click.UsageError`.
    """
    from ..app import App

    module_name, sep, attr = path.partition(":")
    attr = attr if sep else "app"
    if not module_name:
        raise click.UsageError(f"-A {path!r}: give a module, as in -A myproject.app:app")
    if module_name.endswith(".py"):
        module = _import_file(module_name)
    else:
        module = _import_module(module_name)
    try:
        found = getattr(module, attr)
    except AttributeError:
        raise click.UsageError(
            f"-A {path!r}: module {module.__name__!r} has no attribute {attr!r}"
            + ("" if sep else " (name the attribute: -A module:attribute)")
        ) from None
    if not isinstance(found, App):
        raise click.UsageError(
            f"-A {path!r}: {module.__name__}.{attr} is a {type(found).__name__}, not a fluvial App"
        )
    return found, module.__name__


def _import_module(name: str) -> ModuleType:
    # Like ``python -m``: the current directory is importable.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Only a missing *app* module is a usage error; a missing import
        # inside it is the app's own bug and keeps its traceback.
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise click.UsageError(
                f"-A: cannot import module {name!r} ({exc}). Run from the directory that "
                "contains it, or install it."
            ) from None
        raise


def _import_file(filename: str) -> ModuleType:
    path = Path(filename)
    if not path.is_file():
        raise click.UsageError(f"-A: no such file {filename!r}")
    # Named after the file, as agents of ``python file.py`` are (see Agent naming).
    name = path.stem
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path.resolve()):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    if spec is None or spec.loader is None:
        raise click.UsageError(f"-A: cannot import {filename!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))
    spec.loader.exec_module(module)
    return module


def scan_app_option(args: Sequence[str]) -> str | None:
    """The ``-A`` value in raw arguments (``--help`` runs before options are parsed)."""
    for i, arg in enumerate(args):
        if arg in ("-A", "--app") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--app="):
            return arg.partition("=")[2]
        if arg.startswith("-A") and len(arg) > 2:
            return arg[2:]
    return None


def _options(command: click.Command) -> dict[str, bool]:
    """A command's option strings, each with whether it takes a value."""
    found: dict[str, bool] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in (*param.opts, *param.secondary_opts):
                found[opt] = not param.is_flag and not param.count
    return found


def hoist_global_options(group: click.Group, args: list[str]) -> list[str]:
    """Move global options given after a built-in command (``worker --datadir D``,
    ``agents --json``) before it, where click parses them; an option the command
    has itself (``worker --web-port``) stays the command's."""
    global_opts = _options(group)
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        name, eq, _ = args[i].partition("=")
        i += 2 if global_opts.get(name) and not eq else 1
    if i >= len(args) or args[i] not in group.commands:
        return args  # no command, or the app's own (its options are its business)
    own = _options(group.commands[args[i]])
    hoisted: list[str] = []
    kept: list[str] = []
    rest = args[i + 1:]
    j = 0
    while j < len(rest):
        arg = rest[j]
        if arg == "--":
            kept += rest[j:]
            break
        name, eq, _ = arg.partition("=")
        target = hoisted if name in global_opts and name not in own else kept
        target.append(arg)
        if (global_opts.get(name) if target is hoisted else own.get(name)) and not eq \
                and j + 1 < len(rest):
            target.append(rest[j + 1])
            j += 1
        j += 1
    return [*args[:i], *hoisted, args[i], *kept]


# -- the group -----------------------------------------------------------------


class FluvialGroup(click.Group):
    """Built-in commands plus the app's ``@app.command`` ones; FluvialError exits 1."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except FluvialError as exc:  # a setting given on the command line was refused
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        state = ctx.ensure_object(State)
        args = hoist_global_options(self, args)
        if state.app_path is None:
            state.app_path = scan_app_option(args) or os.environ.get(APP_ENVVAR) or None
        rest = super().parse_args(ctx, args)
        state.configure(ctx.params)
        return rest

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        state = ctx.find_object(State)
        if state is not None and state.has_app:
            names += sorted(set(state.get_app().commands) - set(names))
        return names

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        state = ctx.find_object(State)
        if state is None or not state.has_app:
            return None
        commands = state.get_app().commands
        found = commands.get(cmd_name) or commands.get(cmd_name.replace("_", "-"))
        return found if isinstance(found, click.Command) else None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FluvialError as exc:
            # A configuration or broker problem: the message says what to do.
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


def global_options(group: click.Group) -> click.Group:
    """Faust's global options (``-A``, ``-l``, ``--json`` …) plus the settings ones."""
    options = [
        click.version_option(__version__, prog_name="fluvial", message="%(prog)s %(version)s"),
        click.option("-A", "--app", envvar=APP_ENVVAR, metavar="MODULE[:ATTR]",
                     help="The app: module:attribute, or a module with an `app` "
                          "attribute (env FLUVIAL_APP)."),
        click.option("-l", "--loglevel", type=click.Choice(list(LOGLEVELS), case_sensitive=False),
                     help="Logging level (default: info for the worker, warning otherwise)."),
        click.option("--broker", metavar="URL", help="Broker URL (kafka://host:port or memory://); "
                                      "overrides FLUVIAL_BROKER and App(broker=...)."),
        click.option("-D", "--datadir", metavar="DIR", help="Directory for application state."),
        click.option("--web-port", type=click.IntRange(1, 65535), metavar="PORT",
                     help="Port of the web server."),
        click.option("--json", is_flag=True, default=False,
                     help="Machine-readable JSON output for listing commands."),
        click.option("-q", "--quiet/--no-quiet", default=False, help="Print nothing to stdout."),
        click.option("--debug/--no-debug", default=False, help="Log at debug level."),
        click.option("-W", "--workdir", type=click.Path(file_okay=False, exists=True),
                     help="Change to this directory first."),
    ]
    # Applied to a Command (not a function), each option is appended in turn.
    for option in options:
        group = option(group)
    return group


# -- output --------------------------------------------------------------------


def _console(file: Any = None) -> Console:
    console = Console(file=file, highlight=False)
    if not console.is_terminal:
        # Piped output (grep, tests): do not wrap at 80 columns.
        console.width = 200
    return console


def render_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A rich table as text."""
    table = RichTable()
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console = _console()
    with console.capture() as capture:
        if title:
            console.print(Text(title, style="bold"))
        console.print(table)
    return "\n".join(line.rstrip() for line in capture.get().splitlines())


def report_table(state: State, title: str, headers: Sequence[str],
                 rows: Sequence[Sequence[Any]]) -> None:
    """Print rows as a table, or as a JSON list of objects with ``--json`` (as Faust)."""
    if state.json:
        state.say(json.dumps([dict(zip(headers, row, strict=True)) for row in rows]))
    else:
        state.say(render_table(title, headers, rows))
