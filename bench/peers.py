"""Separate virtualenvs for the peer systems, created once under ``.bench/venvs`` and reused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Latest releases of each; each brings its own Kafka client (aiokafka / confluent-kafka).
# "faust-0.15.3" is the release the migration test (tests/compat) moves apps from.
REQUIREMENTS: dict[str, list[str]] = {
    "faust": ["faust-streaming"],
    "quix": ["quixstreams"],
    "faust-0.15.3": ["faust-streaming==0.15.3"],
}


def ensure_venv(root: Path, name: str) -> Path:
    """Return the Python of the ``name`` virtualenv, creating and filling it if missing."""
    venv = root / name
    python = venv / "bin" / "python"
    stamp = venv / ".bench-installed"
    wanted = "\n".join(REQUIREMENTS[name])
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"installing {' '.join(REQUIREMENTS[name])} into {venv} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip", *REQUIREMENTS[name]],
        check=True,
    )
    stamp.write_text(wanted)
    return python
