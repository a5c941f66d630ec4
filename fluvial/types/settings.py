"""Faust's ``faust.types.settings``: the class of ``app.conf``."""

from __future__ import annotations

from ..settings import Settings

__all__ = ["Settings"]
