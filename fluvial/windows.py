"""Faust's ``faust.windows``: the window types of windowed tables."""

from __future__ import annotations

from .tables.windows import (
    HoppingWindow,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    Window,
)

__all__ = ["HoppingWindow", "SessionWindow", "SlidingWindow", "TumblingWindow", "Window"]
