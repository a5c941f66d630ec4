"""The README's command lines, run as written (placeholders filled in)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text()
APP = "tests.cli.readme_app:app"


def bash_blocks_after(heading: str) -> list[str]:
    """The command lines of the first ```bash block after ``heading``."""
    section = README[README.index(heading):]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, f"no bash block after {heading!r}"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def runnable(line: str, datadir: Path) -> list[list[str]]:
    """A README line as the argument lists to run (``a|b [--json]`` is one per command)."""
    line = (line.replace("module:app", APP).replace("shop:app", APP)
            .replace("[--duration S]", "--duration 1")
            .replace('{"account_id": "a1", ...}', '{"account_id": "a1", "amount": 3}')
            .replace("'...'", '\'{"account_id": "a2", "amount": 1}\'')
            .replace("/var/lib/shop", str(datadir)))
    args = shlex.split(line)
    assert args[0] == "fluvial", line
    args = args[1:]
    if "worker" in args and "--duration" not in args:
        args += ["--duration", "1"]
    for i, arg in enumerate(args):
        if "|" in arg and not arg.startswith("{"):
            rest = [a for a in args[i + 1:] if a != "[--json]"]
            json_flag = ["--json"] if "[--json]" in args else []
            return [[*args[:i], command, *rest, *json_flag] for command in arg.split("|")]
    return [args]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLUVIAL_")}
    environ["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run([sys.executable, "-m", "fluvial", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=120)


COMMAND_LINES = bash_blocks_after("## Command line")
WORKER_LINES = bash_blocks_after("### Several workers")


def in_bash(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``line`` typed into an interactive bash, with the virtualenv's ``fluvial`` on PATH."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLUVIAL_")}
    environ["PATH"] = f"{Path(sys.executable).parent}:{environ.get('PATH', '')}"
    environ["SHELL"] = "/bin/bash"  # a login shell sets it; CI may not
    # After the line, ask bash's own completion machinery what ``fluvial wor<TAB>`` offers.
    script = (f"{line}\ncomplete -p fluvial\n"
              "COMP_WORDS=(fluvial wor); COMP_CWORD=1; _fluvial_completion fluvial\n"
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("line", COMMAND_LINES)
def test_command_line_section(line: str, tmp_path: Path) -> None:
    if line.startswith("eval "):  # eval "$(fluvial completion)": shell code for bash itself
        proc = in_bash(line, tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "-F _fluvial_completion fluvial" in proc.stdout
        assert "worker" in proc.stdout.splitlines(), proc.stdout
        return
    for args in runnable(line, tmp_path):
        proc = run(args, tmp_path)
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
        if "--json" in args:
            json.loads(proc.stdout)
        if "send" in args:
            assert "sent to" in proc.stdout


@pytest.mark.parametrize("line", WORKER_LINES)
def test_several_workers_section(line: str, tmp_path: Path) -> None:
    datadir = tmp_path / "shop"
    [args] = runnable(line, datadir)
    proc = run(args, tmp_path)
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    # The RocksDB store of the app is in the --datadir given.
    assert list(datadir.glob("**/order_count-*.db")), f"nothing in {datadir}: {proc.stderr}"
