"""``fluvial worker``: run the app until SIGINT/SIGTERM (or ``--duration`` seconds)."""

from __future__ import annotations

import logging
import sys

import click

from .base import LOGLEVELS, State

__all__ = ["worker"]


@click.command()
@click.option("-l", "--loglevel", type=click.Choice(list(LOGLEVELS), case_sensitive=False),
              help="Logging level (default: info).")
@click.option("-f", "--logfile", type=click.Path(dir_okay=False, writable=True),
              help="Log to this file instead of stderr.")
@click.option("--log-format", type=click.Choice(["text", "json"]),
              help="Log lines as text, or one JSON object per line (default: the "
                   "log_format setting, text).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop cleanly after this many seconds (default: run until stopped).")
@click.option("--with-web/--without-web", default=None,
              help="Enable/disable the web server (default: the web_enabled setting).")
@click.option("-p", "--web-port", type=click.IntRange(1, 65535), help="Port of the web server.")
@click.option("-b", "--web-bind", help="Address the web server binds to.")
@click.option("-h", "--web-host", help="Host name other workers reach this one at.")
@click.pass_obj
def worker(state: State, loglevel: str | None, logfile: str | None, log_format: str | None,
           duration: float | None, with_web: bool | None, web_port: int | None,
           web_bind: str | None, web_host: str | None) -> None:
    """Start a worker for the app (stop it with Ctrl-C or SIGTERM)."""
    from ..runtime.worker import run_worker

    app = state.get_app()
    app.override(web_enabled=with_web, web_port=web_port, web_bind=web_bind, web_host=web_host,
                 log_format=log_format)
    level = LOGLEVELS[loglevel.lower()] if loglevel else state.loglevel or "info"
    if logfile:
        # Configured first, so the worker's own logging setup keeps this handler.
        logging.basicConfig(filename=logfile, level=getattr(logging, level.upper()))
    sys.exit(run_worker(app, loglevel=level, duration=duration))
