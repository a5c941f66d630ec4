"""Signals (Faust's ``app.on_partitions_assigned`` …): connect functions that run when
something happens in the app.

``@app.on_partitions_assigned.connect`` registers a receiver; the app calls
every receiver as ``receiver(app, *args, signal=signal, **kwargs)``, so a
receiver takes the sender first and ``**kwargs`` last::

    @app.on_partitions_assigned.connect
    async def on_assigned(app, assigned, **kwargs):
        ...

A :class:`Signal` is sent from the worker's event loop and awaits receivers
that are coroutine functions; a :class:`SyncSignal` calls plain functions.
A receiver that raises is logged, and the other receivers still run.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from .exceptions import ImproperlyConfigured

__all__ = ["Signal", "SyncSignal"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class _BaseSignal:
    def __init__(self, name: str = "", sender: Any = None) -> None:
        self.name = name
        self.sender = sender
        self.receivers: list[Callable[..., Any]] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {len(self.receivers)} receivers>"

    def __bool__(self) -> bool:
        # True while something is connected: the runtime skips sending otherwise.
        return bool(self.receivers)

    def connect(self, fun: F | None = None, **kwargs: Any) -> Any:
        """Connect ``fun`` (usable as ``@signal.connect`` or ``@signal.connect()``)."""
        def register(f: F) -> F:
            if not callable(f):
                raise ImproperlyConfigured(f"{self.name}.connect needs a function, not {f!r}")
            if f not in self.receivers:
                self.receivers.append(f)
            return f
        return register(fun) if fun is not None else register

    def disconnect(self, fun: Callable[..., Any]) -> None:
        """Stop calling ``fun`` (no error if it is not connected)."""
        if fun in self.receivers:
            self.receivers.remove(fun)


class Signal(_BaseSignal):
    """A signal sent from the event loop; receivers may be coroutine functions."""

    async def send(self, *args: Any, **kwargs: Any) -> None:
        for receiver in list(self.receivers):
            try:
                result = receiver(self.sender, *args, signal=self, **kwargs)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("Receiver %r of %s failed", receiver, self.name)


class SyncSignal(_BaseSignal):
    """A signal whose receivers are plain functions, called at once."""

    def send(self, *args: Any, **kwargs: Any) -> None:
        for receiver in list(self.receivers):
            try:
                result = receiver(self.sender, *args, signal=self, **kwargs)
                if inspect.iscoroutine(result):
                    result.close()
                    raise ImproperlyConfigured(
                        f"{self.name} calls its receivers synchronously: {receiver!r} must be "
                        "a plain function, not a coroutine function")
            except Exception:
                logger.exception("Receiver %r of %s failed", receiver, self.name)
