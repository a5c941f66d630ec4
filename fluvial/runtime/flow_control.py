"""``app.flow_control``: Faust's switch that holds the worker's fetching.

Faust's is mode's ``FlowControlEvent``: suspended until the worker has
joined its group and recovered, suspended again around rebalances; its
testing guide calls ``app.flow_control.resume()`` in a fixture. Here the
worker resumes it when it starts; while it is suspended the fetch loop
fetches nothing (events already buffered are still processed and
committed). A worker kept suspended longer than ``broker_max_poll_interval``
leaves the group, as any consumer that stops fetching.
"""

from __future__ import annotations

import asyncio

__all__ = ["FlowControl"]


class FlowControl:
    """Suspend or resume fetching (``suspend()``, ``resume()``, ``is_active()``)."""

    def __init__(self) -> None:
        self._active = False
        self._resumed: asyncio.Event | None = None

    def suspend(self) -> None:
        """Fetch nothing more until :meth:`resume`."""
        self._active = False
        if self._resumed is not None:
            self._resumed.clear()

    def resume(self) -> None:
        """Let the worker fetch again."""
        self._active = True
        if self._resumed is not None:
            self._resumed.set()

    def is_active(self) -> bool:
        """True while fetching is allowed (the worker resumes it at start)."""
        return self._active

    async def acquire(self) -> None:
        """Return at once when active, else when :meth:`resume` is called."""
        if self._active:
            return
        if self._resumed is None:
            self._resumed = asyncio.Event()
        await self._resumed.wait()

    def __repr__(self) -> str:
        return f"<FlowControl {'active' if self._active else 'suspended'}>"
