"""``faust.Worker``: run an app as a worker from your own script.

``faust.Worker(app, loglevel='info').execute_from_commandline()`` runs the
app until SIGINT/SIGTERM and exits with the worker's status, like
``fluvial -A module:app worker``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from .app import App

__all__ = ["Worker"]


class Worker:
    """A worker process for ``app``; extra ``services`` start and stop with it."""

    def __init__(self, app: App, *services: Any, loglevel: str | int = "info",
                 logfile: str | None = None, quiet: bool = False, debug: bool = False,
                 **kwargs: Any) -> None:
        self.app = app
        self.loglevel = loglevel
        self.logfile = logfile
        for service in services:
            app.service(service)

    def execute_from_commandline(self) -> NoReturn:
        """Run until stopped, then exit the process with the worker's status (0: clean)."""
        sys.exit(self.run())

    def run(self, *, duration: float | None = None) -> int:
        """Run until stopped (or ``duration`` seconds); return the exit status."""
        import logging

        from .runtime.worker import run_worker

        if self.logfile:
            level = self.loglevel if isinstance(self.loglevel, int) else getattr(
                logging, str(self.loglevel).upper(), logging.INFO)
            logging.basicConfig(filename=self.logfile, level=level)
        return run_worker(self.app, loglevel=self.loglevel, duration=duration)
