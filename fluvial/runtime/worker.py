"""Running an app as a worker process: logging, banner, signals, exit code."""

from __future__ import annotations

import asyncio
import gc
import logging
import logging.config
import signal
import sys
import traceback
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from .._version import __version__
from ..exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from ..app import App
    from ..settings import Settings

__all__ = ["banner", "run_worker"]

logger = logging.getLogger(__name__)


def setup_logging(loglevel: str | int = "info", log_format: str = "text") -> None:
    """Log at ``loglevel`` to stderr (or the handlers already set up, e.g. a log file),
    as text lines or JSON objects (``log_format``)."""
    from ..logs import TEXT_FORMAT, formatter_for

    level = loglevel if isinstance(loglevel, int) else getattr(logging, loglevel.upper(), None)
    if not isinstance(level, int):
        raise ValueError(f"Unknown log level {loglevel!r}")
    logging.basicConfig(level=level, format=TEXT_FORMAT, stream=sys.stderr)
    formatter = formatter_for(log_format)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


def apply_logging_settings(app: App) -> None:
    """Faust's ``logging_config`` (``dictConfig``, after the worker's own set-up) and
    ``loghandlers`` (added to the root logger)."""
    conf = app.conf
    if conf.logging_config:
        config = dict(conf.logging_config)
        config.setdefault("version", 1)
        # Loggers made before (fluvial's own) stay enabled unless the config says otherwise.
        config.setdefault("disable_existing_loggers", False)
        try:
            logging.config.dictConfig(config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            raise ImproperlyConfigured(f"logging_config could not be applied: {exc}") from exc
    root = logging.getLogger()
    for handler in conf.loghandlers:
        if handler not in root.handlers:
            root.addHandler(handler)


def use_worker_defaults(app: App) -> None:
    """A worker on Kafka keeps its tables in RocksDB unless a store was chosen.

    On the in-process broker the changelogs die with the process, so a durable
    store would only keep stale state: there the default stays ``memory://``.
    """
    if "store" not in app.conf.given and not app.transport.in_process:
        app.override(store="rocksdb://")


def banner(app: App) -> str:
    conf = app.conf
    transport = app.transport
    import confluent_kafka
    import msgspec

    where = (
        "IN-PROCESS broker (memory://): one process only, data is lost when it exits"
        if transport.in_process
        else f"{conf.broker}"
    )
    lines = [
        f"fluvial {__version__} — app {conf.id!r}",
        f"  transport:  {where}",
        f"  store:      {conf.store}",
        f"  guarantee:  {conf.processing_guarantee}",
        f"  web:        {_web_line(conf)}",
        f"  agents:     {', '.join(app.agents) or 'none'}",
        f"  tables:     {', '.join(t.name for t in app.tables) or 'none'}",
        f"  python {sys.version.split()[0]}, librdkafka {confluent_kafka.libversion()[0]}, "
        f"msgspec {msgspec.__version__}",
    ]
    return "\n".join(lines)


def _web_line(conf: Settings) -> str:
    if not conf.web_enabled:
        return "off (web_enabled=False)"
    return f"http://{conf.web_bind}:{conf.web_port}, advertised as {conf.canonical_url}"


def tune_gc() -> None:
    """Collect young objects less often and never rescan start-up objects.

    A worker allocates several short-lived objects per event (message, event,
    record); the default gen-0 threshold of 700 runs a collection every few
    hundred events.
    """
    gc.set_threshold(50_000, 50, 100)
    gc.freeze()


async def _run(app: App, duration: float | None) -> None:
    async with AsyncExitStack() as stack:
        if app.conf.web_enabled:
            # Bound first: a port in use fails the start before the worker joins its group.
            await stack.enter_async_context(app.web.serving())
        await _run_app(app, duration)


async def _run_app(app: App, duration: float | None) -> None:
    loop = asyncio.get_running_loop()
    async with app.running():
        tune_gc()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, _on_signal, app, signum)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not on the main thread
                pass
        print(banner(app), file=sys.stderr, flush=True)
        if duration is not None:
            loop.call_later(duration, app.stop)
        try:
            await app.wait_stopped()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    logger.info("Worker stopped cleanly")


def _on_signal(app: App, signum: int) -> None:
    logger.info("Received %s: stopping (committing processed offsets)",
                signal.Signals(signum).name)
    app.stop()


def run_worker(app: App, *, loglevel: str | int = "info", duration: float | None = None) -> int:
    """Run ``app`` until SIGINT/SIGTERM (or ``duration`` seconds); return the exit code.

    A clean stop returns 0; a crash prints the traceback and returns 1.
    """
    setup_logging(loglevel, app.conf.log_format)
    apply_logging_settings(app)
    use_worker_defaults(app)
    app.on_worker_init.send()
    try:
        asyncio.run(_run(app, duration))
    except KeyboardInterrupt:  # pragma: no cover - signal handlers normally catch it
        return 130
    except Exception as exc:
        cause = exc.__cause__ or exc
        traceback.print_exception(type(cause), cause, cause.__traceback__, file=sys.stderr)
        print(f"\nWorker for app {app.conf.id!r} crashed: {exc}", file=sys.stderr)
        return 1
    return 0
