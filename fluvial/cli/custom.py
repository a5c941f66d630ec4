"""Custom commands: ``@app.command(option('--x', type=int), ...)`` as in Faust.

A command function that takes parameters receives an :class:`AppCommand`
first (Faust's ``self``: ``.app``, ``.say()``, ``.tabulate()``) and then its
options by name; one without parameters is called with nothing. Async
functions run with :func:`asyncio.run`; if the command started the producer
it is flushed and stopped afterwards, so no message is lost at exit.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from .base import State, render_table

if TYPE_CHECKING:
    from ..app import App

__all__ = ["AppCommand", "argument", "close_clients", "make_command", "option", "run_with_app"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Faust ``AppCommand`` class attributes that mean nothing here.
_IGNORED_FAUST_ATTRIBUTES = frozenset({"require_app", "daemon", "redirect_stdouts",
                                       "redirect_stdouts_level", "abstract"})


def option(*param_decls: str, show_default: bool = True, **attrs: Any) -> Callable[[Any], Any]:
    """:func:`click.option` showing defaults in ``--help`` (as ``faust.cli.option``)."""
    return click.option(*param_decls, show_default=show_default, **attrs)


def argument(*param_decls: str, **attrs: Any) -> Callable[[Any], Any]:
    """:func:`click.argument` (as ``faust.cli.argument``)."""
    return click.argument(*param_decls, **attrs)


class AppCommand:
    """What a custom command function gets as ``self``."""

    def __init__(self, ctx: click.Context, app: App, state: State) -> None:
        self.ctx = ctx
        self.app = app
        self.state = state
        self.prog_name = ctx.find_root().command_path

    @property
    def json(self) -> bool:
        return self.state.json

    @property
    def quiet(self) -> bool:
        return self.state.quiet

    @property
    def debug(self) -> bool:
        return self.state.debug

    @property
    def loglevel(self) -> str:
        return self.state.loglevel or "warning"

    def say(self, message: Any, file: IO[str] | None = None, err: bool = False,
            **kwargs: Any) -> None:
        """Print to stdout (or ``err=True``: stderr), unless ``--quiet``."""
        if not self.state.quiet:
            click.echo(message, file=file, err=err, **kwargs)

    def carp(self, message: Any, **kwargs: Any) -> None:
        """Print only with ``--debug``."""
        if self.state.debug:
            self.say(f"#-- {message}", **kwargs)

    def dumps(self, obj: Any) -> str:
        return json.dumps(obj, default=str)

    def tabulate(self, data: Sequence[Sequence[Any]], headers: Sequence[str] | None = None,
                 title: str = "", **kwargs: Any) -> str:
        """A table as text; JSON with ``--json`` (rows as objects when headers are given)."""
        if self.state.json:
            if headers:
                return self.dumps([dict(zip(headers, row, strict=False)) for row in data])
            return self.dumps([list(row) for row in data])
        if headers is None:
            width = max((len(row) for row in data), default=0)
            headers = [""] * width
        return render_table(title, headers, data)


def make_command(app: App, fun: Callable[..., Any], options: Sequence[Any],
                 **kwargs: Any) -> click.Command:
    """The click command for ``@app.command(*options, name=, help=)`` on ``fun``."""
    name = kwargs.pop("name", None)
    help_text = kwargs.pop("help", None) or inspect.getdoc(fun)
    hidden = bool(kwargs.pop("hidden", False))
    unknown = set(kwargs) - _IGNORED_FAUST_ATTRIBUTES
    if unknown:
        from ..exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"@app.command() got unknown arguments {sorted(unknown)}: it takes click "
            "options/arguments, name=, help= and hidden="
        )
    takes_self = bool(inspect.signature(fun).parameters)

    def callback(**params: Any) -> None:
        ctx = click.get_current_context()
        state = ctx.find_object(State) or State(app=app)
        state.setup_logging()
        args = (AppCommand(ctx, app, state),) if takes_self else ()
        result = fun(*args, **params)
        if inspect.isawaitable(result):
            run_with_app(app, result)

    # Options apply innermost-last so they (and positional arguments) keep
    # the order they were listed in.
    for decorator in reversed(options):
        callback = decorator(callback)
    return click.command(name=name or fun.__name__, help=help_text, hidden=hidden)(callback)


def run_with_app(app: App, awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` in a new event loop; then flush and stop what it started."""

    async def run() -> T:
        try:
            return await awaitable
        finally:
            await close_clients(app)

    return asyncio.run(run())


async def close_clients(app: App) -> None:
    """Flush and stop the producer and transport, if the command started them."""
    await app.close()
