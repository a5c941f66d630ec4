"""faust-streaming's own tests for Records, fields and windows, run against fluvial.

They live outside the repository (``../shared/conformance/faust-streaming``
beside the clone) and are run unchanged, in a pytest subprocess whose
``faust`` package is fluvial (the :mod:`tests.conformance.faust_alias`
plugin). Tests of Faust's implementation rather than its behaviour are
skipped there, each with its reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT.parent / "shared" / "conformance" / "faust-streaming"


def test_faust_streaming_conformance_suite_passes() -> None:
    if not (SUITE / "tests").is_dir():
        pytest.skip(f"faust-streaming's conformance tests are not at {SUITE}")
    # Nothing is written beside the suite (it is shared, and read-only in CI).
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conformance.faust_alias",
         "-p", "no:cacheprovider", "-c", os.devnull, "--rootdir", str(SUITE),
         str(SUITE / "tests")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 150, summary
    assert "failed" not in summary and "error" not in summary, summary
