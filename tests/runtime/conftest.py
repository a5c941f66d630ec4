"""Runtime tests: the helpers of tests/app (unique names, ``eventually``)."""

from __future__ import annotations

from tests.app.conftest import broker_url, eventually, unique

__all__ = ["broker_url", "eventually", "unique"]
