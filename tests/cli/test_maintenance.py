"""``clean-versions`` and ``completion``."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .conftest import Invoke, new_app


def test_clean_versions_deletes_other_versions_only(invoke: Invoke, tmp_path: Path) -> None:
    app = new_app(broker="memory://", version=3)
    result = invoke("--datadir", str(tmp_path), "clean-versions", app=app)
    assert result.exit_code == 0, result.output
    assert "nothing to delete" in result.output
    root = app.conf.appdir.parent
    for name in ("v1", "v2", "v3"):
        (root / name / "tables").mkdir(parents=True)
    (root / "notes").mkdir()
    result = invoke("--datadir", str(tmp_path), "clean-versions", app=app)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in root.iterdir()) == ["notes", "v3"]
    assert "Deleted" in result.output and "v1" in result.output and "v2" in result.output


def test_completion_prints_a_script_the_shell_accepts(invoke: Invoke) -> None:
    result = invoke("completion", "--shell", "bash")
    assert result.exit_code == 0, result.output
    assert "_FLUVIAL_COMPLETE" in result.output
    # bash parses it (syntax check only: -n).
    check = subprocess.run(["bash", "-n"], input=result.output, text=True,
                           capture_output=True, check=False)
    assert check.returncode == 0, check.stderr
    bad = invoke("completion", "--shell", "tcsh")
    assert bad.exit_code != 0
