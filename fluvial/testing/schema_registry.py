"""Run a real schema registry (Apicurio Registry) on loopback for tests.

Apicurio Registry serves the Confluent Schema Registry API at
``/apis/ccompat/v7`` and runs from one Maven Central artifact on Java 17
(``io.apicurio:apicurio-registry-app:3.0.9``, ``tar.gz``, classifier
``all``). It is fetched once with ``mvn dependency:copy`` and unpacked into a
cache folder, then started as ``java -jar apicurio-registry-app-…-runner.jar``
with in-memory storage (ready in a few seconds, ~300 MB of memory).

Command line::

    python -m fluvial.testing.schema_registry start    # prints the ccompat URL
    python -m fluvial.testing.schema_registry status
    python -m fluvial.testing.schema_registry stop

Python::

    with SchemaRegistryServer(state_dir) as registry:
        use(registry.url)   # http://127.0.0.1:PORT/apis/ccompat/v7

Its default compatibility is ``NONE`` (Confluent's is ``BACKWARD``):
:meth:`SchemaRegistryServer.set_compatibility` sets the global level.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from ..exceptions import FluvialError

__all__ = ["APICURIO_VERSION", "SchemaRegistryServer", "SchemaRegistryServerError",
           "resolve_apicurio"]

APICURIO_VERSION = "3.0.9"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
CCOMPAT_PATH = "/apis/ccompat/v7"
JVM_OPTS = ["-Xms64m", "-Xmx384m", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true"]
_COMPLETE_MARK = ".complete"
_MARKER = "apicurio-registry-app"


class SchemaRegistryServerError(FluvialError):
    """The test schema registry could not be downloaded, started or stopped."""


def _runner_jar(folder: Path, version: str) -> Path:
    return folder / f"apicurio-registry-app-{version}-runner.jar"


def _unpack(archive: Path, into: Path) -> None:
    """Extract ``archive`` into ``into``, refusing members that would land outside it."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.10.12+/3.11.4+
            tar.extractall(into, filter="data")
            return
        root = into.resolve()
        for member in tar.getmembers():
            inside = (root / member.name).resolve()
            if not (member.isfile() or member.isdir()) or not inside.is_relative_to(root):
                raise SchemaRegistryServerError(
                    f"{archive.name}: refusing to extract {member.name!r} (not a plain file "
                    "inside the archive's folder)")
        tar.extractall(into)  # every member checked above


def resolve_apicurio(cache_dir: Path, version: str = APICURIO_VERSION) -> Path:
    """Return the folder holding the unpacked registry, downloading it once.

    ``FLUVIAL_SCHEMA_REGISTRY_CACHE`` overrides ``cache_dir`` (to share one
    download between clones).
    """
    env = os.environ.get("FLUVIAL_SCHEMA_REGISTRY_CACHE")
    target = Path(env) if env else cache_dir / f"apicurio-registry-{version}"
    if (target / _COMPLETE_MARK).exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None or shutil.which("java") is None:
        raise SchemaRegistryServerError(
            "java and mvn are needed to run the schema registry for tests: "
            "apt-get install -y openjdk-17-jre-headless maven "
            "(or set SCHEMA_REGISTRY_URL to an existing registry)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        artifact = f"io.apicurio:apicurio-registry-app:{version}:tar.gz:all"
        cmd = [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={artifact}",
               f"-DoutputDirectory={tmp}"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp)
        archives = list(Path(tmp).glob("*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise SchemaRegistryServerError(
                f"mvn could not fetch {artifact} (exit {done.returncode}); "
                f"is Maven Central reachable?\n{(done.stdout + done.stderr)[-3000:]}"
            )
        unpacked = Path(tmp) / "registry"
        _unpack(archives[0], unpacked)
        if not _runner_jar(unpacked, version).exists():
            raise SchemaRegistryServerError(
                f"{archives[0].name} holds no {_runner_jar(unpacked, version).name}"
            )
        (unpacked / _COMPLETE_MARK).write_text(version)
        shutil.rmtree(target, ignore_errors=True)
        unpacked.rename(target)
    return target


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X") and _MARKER in cmdline


class SchemaRegistryServer:
    """One Apicurio Registry process recorded in ``state_dir`` (pid, port, log)."""

    def __init__(self, state_dir: Path, *, version: str = APICURIO_VERSION,
                 cache_dir: Path | None = None) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.version = version
        self.cache_dir = cache_dir or self.state_dir
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def _log(self) -> Path:
        return self.state_dir / "registry.log"

    def status(self) -> dict[str, Any] | None:
        """The recorded process (pid, port, url) if it is alive, else ``None``."""
        try:
            state: dict[str, Any] = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None
        return state if _pid_alive(int(state.get("pid", 0))) else None

    @property
    def url(self) -> str:
        """The Confluent-compatible API's base URL."""
        state = self.status()
        if state is None:
            raise SchemaRegistryServerError(
                f"no schema registry running (state in {self.state_dir})"
            )
        return str(state["url"])

    def start(self) -> str:
        """Start the registry (reusing a live recorded one); return its ccompat URL."""
        state = self.status()
        if state is not None:
            return str(state["url"])
        folder = resolve_apicurio(self.cache_dir, self.version)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        cmd = ["java", *JVM_OPTS, "-Dquarkus.http.host=127.0.0.1", f"-Dquarkus.http.port={port}",
               "-jar", str(_runner_jar(folder, self.version))]
        with self._log.open("wb") as out:
            self._proc = subprocess.Popen(cmd, cwd=folder, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}{CCOMPAT_PATH}"
        self._state_file.write_text(json.dumps({"pid": self._proc.pid, "port": port, "url": url}))
        self._wait_ready(url)
        return url

    def _wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                break
            try:
                if httpx.get(f"{url}/subjects", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        log = self._log.read_text(errors="replace").splitlines()[-30:]
        self.stop()
        raise SchemaRegistryServerError(
            f"the schema registry did not become ready within {READY_TIMEOUT_S:.0f} s; "
            "its log ends:\n" + "\n".join(log)
        )

    def set_compatibility(self, level: str) -> None:
        """Set the registry's global compatibility level (``BACKWARD``, ``NONE``, ...)."""
        response = httpx.put(f"{self.url}/config", json={"compatibility": level}, timeout=10.0)
        response.raise_for_status()

    def stop(self) -> None:
        """Stop the recorded process (SIGTERM, then SIGKILL); no-op if none runs."""
        state = self.status()
        if state is not None:
            pid = int(state["pid"])
            for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                deadline = time.monotonic() + wait_s
                while _pid_alive(pid) and time.monotonic() < deadline:
                    if self._proc is not None and self._proc.pid == pid:
                        self._proc.poll()
                    time.sleep(0.1)
                if not _pid_alive(pid):
                    break
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1.0)
            self._proc = None
        self._state_file.unlink(missing_ok=True)

    def __enter__(self) -> SchemaRegistryServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fluvial.testing.schema_registry")
    parser.add_argument("command", choices=["start", "status", "stop"])
    parser.add_argument("--state-dir", default=".schema-registry", type=Path)
    args = parser.parse_args(argv)
    server = SchemaRegistryServer(args.state_dir)
    if args.command == "start":
        print(server.start())
    elif args.command == "status":
        state = server.status()
        print(state["url"] if state else "not running")
        return 0 if state else 1
    else:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
