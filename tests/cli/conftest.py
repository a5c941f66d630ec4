"""Command-line tests: every test starts without ``FLUVIAL_*`` variables, and gets them back."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

import fluvial
from fluvial.cli import State, cli


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The CLI exports --broker etc. as FLUVIAL_* before importing an app
    # module; monkeypatch restores whatever was there before the test.
    for name in list(os.environ):
        if name.startswith("FLUVIAL_"):
            monkeypatch.delenv(name)
    yield


Invoke = Callable[..., Result]


@pytest.fixture
def invoke() -> Invoke:
    """Run the CLI in-process: ``invoke('--json', 'agents', app=some_app)``."""

    def run(*args: str, app: fluvial.App | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), obj=State(app=app), catch_exceptions=False)

    return run


@pytest.fixture
def memory_url() -> str:
    """A broker of its own for each test."""
    return f"memory://cli-{uuid.uuid4().hex[:8]}"


def new_app(**settings: Any) -> fluvial.App:
    return fluvial.App(f"cli-test-{uuid.uuid4().hex[:8]}", **settings)
