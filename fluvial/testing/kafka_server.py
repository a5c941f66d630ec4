"""Run a real Apache Kafka (KRaft, combined broker+controller) on loopback for tests.

The broker jars are resolved from Maven Central once with ``mvn
dependency:copy-dependencies`` into a cache folder, then each node runs as
``java -cp 'CACHE/*' kafka.Kafka server.properties``.

Command line::

    python -m fluvial.testing.kafka_server start     # prints 127.0.0.1:PORT
    python -m fluvial.testing.kafka_server status
    python -m fluvial.testing.kafka_server stop

Python::

    with KafkaServer(tmp_path, nodes=3) as kafka:
        use(kafka.bootstrap)
        kafka.kill_node(2)
        kafka.restart_node(2)

Each node listens for PLAINTEXT, SASL_PLAINTEXT (PLAIN, ``SASL_USER``) and
SASL_SSL (PLAIN and OAUTHBEARER) clients; the SASL_SSL certificate is signed
by a CA made with openssl at start (``KafkaServer.ca_file``).

A state folder (default ``./.kafka``) records pids and ports, so ``start`` is
idempotent across processes: a live broker recorded there is reused.  Test
sessions call :meth:`KafkaServer.acquire` / :meth:`KafkaServer.release`
instead, so concurrent sessions share one broker and the last one out stops
it -- unless it was started from the command line, which pins it until
``stop``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

from ..exceptions import FluvialError

__all__ = ["KAFKA_VERSION", "KafkaServer", "KafkaServerError", "NodeInfo", "resolve_kafka"]

KAFKA_VERSION = "4.1.1"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
#: The Z garbage collector: its pauses stay under a millisecond. With the JVM's
#: default G1 the broker paused 10-30 ms for a young collection every ~2 s on two
#: busy cores (still 10-20 ms with Kafka's own G1 settings), and every event
#: passing through the broker waited it out: most of a table pipeline's p99.
JVM_OPTS = ["-Xms512m", "-Xmx1g", "-XX:+UseZGC", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true"]
_COMPLETE_MARK = ".complete"

_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:fluvial.kafka.log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class KafkaServerError(FluvialError):
    """The test Kafka broker could not be resolved, formatted, started or stopped."""


#: The user the SASL_PLAINTEXT listener accepts.
SASL_USER = "fluvial"
SASL_PASSWORD = "fluvial-secret"


@dataclass
class NodeInfo:
    """One broker+controller process: its id, pid and loopback ports."""

    node_id: int
    port: int
    controller_port: int
    pid: int = 0
    #: A SASL_PLAINTEXT listener (PLAIN mechanism, user ``SASL_USER``), 0 if none.
    sasl_port: int = 0
    #: A SASL_SSL listener (PLAIN and OAUTHBEARER; certificate signed by the
    #: cluster's own CA, ``KafkaServer.ca_file``), 0 if none.
    sasl_ssl_port: int = 0


def _cache_dir(version: str) -> Path:
    env = os.environ.get("FLUVIAL_KAFKA_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "fluvial" / f"kafka-{version}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def resolve_kafka(version: str = KAFKA_VERSION, cache_dir: Path | None = None) -> Path:
    """Return a folder holding every jar the broker needs, downloading them once."""
    target = cache_dir or _cache_dir(version)
    if (target / _COMPLETE_MARK).exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None or shutil.which("java") is None:
        raise KafkaServerError(
            "java and mvn are needed to run Kafka for tests: "
            "apt-get install -y openjdk-17-jre-headless maven"
        )
    with _locked(target.with_name(target.name + ".lock")):
        if (target / _COMPLETE_MARK).exists():  # another process finished meanwhile
            return target
        pom = resources.files("fluvial.testing").joinpath("kafka-pom.xml")
        with (
            tempfile.TemporaryDirectory(dir=target.parent) as tmp,
            resources.as_file(pom) as pom_path,
        ):
            jars = Path(tmp) / "jars"
            cmd = [mvn, "-q", "-B", "-f", str(pom_path), "dependency:copy-dependencies",
                   f"-DoutputDirectory={jars}", "-DincludeScope=runtime",
                   f"-Dkafka.version={version}"]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise KafkaServerError(
                    f"mvn could not resolve Kafka {version} (exit {done.returncode}); "
                    f"is Maven Central reachable?\n{(done.stdout + done.stderr)[-3000:]}"
                )
            (jars / _COMPLETE_MARK).write_text(version)
            shutil.rmtree(target, ignore_errors=True)
            jars.rename(target)
    return target


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _pid_alive(pid: int, marker: str) -> bool:
    """True if ``pid`` is a live (non-zombie) process whose command line contains ``marker``."""
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X") and marker in cmdline


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _probe(bootstrap: str, brokers: int, timeout_s: float) -> bool:
    """Ask the cluster for metadata; True once ``brokers`` brokers answer."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    # log_level 0: connection-refused noise while the broker boots is expected.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return len(metadata.brokers) >= brokers


class KafkaServer:
    """One or more local Kafka nodes (KRaft, each broker+controller) recorded in ``state_dir``."""

    def __init__(
        self,
        state_dir: str | Path | None = None,
        nodes: int = 1,
        version: str = KAFKA_VERSION,
        cache_dir: str | Path | None = None,
    ) -> None:
        if nodes < 1:
            raise KafkaServerError(f"nodes must be at least 1, not {nodes}")
        default_state = os.environ.get("FLUVIAL_KAFKA_STATE", ".kafka")
        self.state_dir = Path(state_dir or default_state).resolve()
        self.nodes = nodes
        self.version = version
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.started = False
        """True if the last :meth:`start` launched the broker rather than reusing one."""
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- state -----------------------------------------------------------------
    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    def _read_state(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None
        return data

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_file)

    def _node_dir(self, node_id: int) -> Path:
        return self.state_dir / f"node-{node_id}"

    def _props(self, node_id: int) -> Path:
        return self._node_dir(node_id) / "server.properties"

    def _node_infos(self, state: dict[str, Any]) -> list[NodeInfo]:
        return [NodeInfo(**n) for n in state["nodes"]]

    def _alive(self, info: NodeInfo) -> bool:
        child = self._children.get(info.node_id)
        if child is not None and child.pid == info.pid:
            # Our own child: waitpid is authoritative, and it reaps the zombie.
            return child.poll() is None
        return _pid_alive(info.pid, str(self._props(info.node_id)))

    @property
    def bootstrap(self) -> str:
        """``host:port,...`` of the running cluster (raises if none is recorded)."""
        state = self._read_state()
        if state is None:
            raise KafkaServerError(f"no Kafka recorded in {self.state_dir}; call start() first")
        return str(state["bootstrap"])

    @property
    def sasl_bootstrap(self) -> str | None:
        """``host:port,...`` of the SASL_PLAINTEXT listeners (None for a broker started
        before they existed)."""
        state = self._read_state()
        if state is None:
            raise KafkaServerError(f"no Kafka recorded in {self.state_dir}; call start() first")
        ports = [n.get("sasl_port", 0) for n in state["nodes"]]
        if not all(ports):
            return None
        return ",".join(f"127.0.0.1:{port}" for port in ports)

    @property
    def sasl_ssl_bootstrap(self) -> str | None:
        """``host:port,...`` of the SASL_SSL listeners (None for a broker started before
        they existed)."""
        state = self._read_state()
        if state is None:
            raise KafkaServerError(f"no Kafka recorded in {self.state_dir}; call start() first")
        ports = [n.get("sasl_ssl_port", 0) for n in state["nodes"]]
        if not all(ports):
            return None
        return ",".join(f"127.0.0.1:{port}" for port in ports)

    @property
    def ca_file(self) -> Path:
        """The PEM file of the CA that signed the SASL_SSL listeners' certificate."""
        return self._tls_dir / "ca.pem"

    @property
    def _tls_dir(self) -> Path:
        return self.state_dir / "tls"

    def status(self) -> dict[str, Any] | None:
        """The recorded state with an ``alive`` flag per node, or None if nothing is recorded."""
        state = self._read_state()
        if state is None:
            return None
        for node in state["nodes"]:
            node["alive"] = self._alive(NodeInfo(**node))
        return state

    def _healthy(self, state: dict[str, Any], timeout_s: float = 5.0) -> bool:
        infos = self._node_infos(state)
        if not all(self._alive(n) for n in infos):
            return False
        return _probe(state["bootstrap"], len(infos), timeout_s)

    # -- lifecycle ---------------------------------------------------------------
    def start(self, pin: bool = True) -> str:
        """Start the cluster (or reuse the live one recorded) and return its bootstrap servers.

        ``pin=True`` (the command line) keeps it running until :meth:`stop`;
        test sessions use :meth:`acquire`, which passes ``pin=False``.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with _locked(self.state_dir / ".lock"):
            return self._start_locked(pin)

    def _start_locked(self, pin: bool) -> str:
        state = self._read_state()
        if state is not None and self._healthy(state):
            if len(state["nodes"]) != self.nodes:
                raise KafkaServerError(
                    f"a {len(state['nodes'])}-node Kafka already runs from {self.state_dir}; "
                    f"stop it first or use another state folder for {self.nodes} nodes"
                )
            self.started = False
            if pin and not state.get("pinned"):
                state["pinned"] = True
                self._write_state(state)
            return str(state["bootstrap"])
        if state is not None:
            self._stop_locked(state)  # a stale or half-dead cluster: start afresh
        jars = resolve_kafka(self.version, self.cache_dir)
        try:
            state = self._launch(jars, pinned=pin)
        except BaseException:
            # Leave no half-started JVMs behind (also on Ctrl-C).
            stale = self._read_state()
            if stale is not None:
                self._stop_locked(stale)
            raise
        self.started = True
        return str(state["bootstrap"])

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL) and delete the data; no-op if none recorded."""
        with _locked(self.state_dir / ".lock"):
            state = self._read_state()
            if state is not None:
                self._stop_locked(state)

    def acquire(self) -> str:
        """Register this process as a user of the cluster, starting it if needed."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with _locked(self.state_dir / ".lock"):  # so no release() stops it in between
            bootstrap = self._start_locked(pin=False)
            users = self.state_dir / "users"
            users.mkdir(exist_ok=True)
            (users / str(os.getpid())).touch()
            return bootstrap

    def release(self) -> None:
        """Unregister this process; stop the cluster if it is unpinned and nobody else uses it."""
        with _locked(self.state_dir / ".lock"):
            users = self.state_dir / "users"
            (users / str(os.getpid())).unlink(missing_ok=True)
            others = [p for p in users.glob("*") if _pid_alive(int(p.name), "")]
            state = self._read_state()
            if state is not None and not state.get("pinned") and not others:
                self._stop_locked(state)

    def kill_node(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL: a crash) to one node and wait for it to exit."""
        info = self._node(node_id)
        self._signal_and_wait([info], sig, STOP_TIMEOUT_S)

    def restart_node(self, node_id: int) -> None:
        """Start a node that was killed again, with its old ports and data."""
        with _locked(self.state_dir / ".lock"):
            info = self._node(node_id)
            state = self._read_state() or {}
            if self._alive(info):
                return
            jars = resolve_kafka(self.version, self.cache_dir)
            info.pid = self._spawn(jars, node_id)
            state["nodes"] = [
                asdict(info) if n["node_id"] == node_id else n for n in state["nodes"]
            ]
            self._write_state(state)
            self._wait_ready(state, [info])

    def _node(self, node_id: int) -> NodeInfo:
        state = self._read_state()
        if state is None:
            raise KafkaServerError(f"no Kafka recorded in {self.state_dir}; call start() first")
        for info in self._node_infos(state):
            if info.node_id == node_id:
                return info
        raise KafkaServerError(f"no node {node_id} in {self.state_dir}")

    def _launch(self, jars: Path, pinned: bool) -> dict[str, Any]:
        ports = _free_ports(4 * self.nodes)
        infos = [NodeInfo(i + 1, ports[4 * i], ports[4 * i + 1], sasl_port=ports[4 * i + 2],
                          sasl_ssl_port=ports[4 * i + 3])
                 for i in range(self.nodes)]
        make_tls_files(self._tls_dir)
        cluster_id = _cluster_id()
        (self.state_dir / "log4j2.properties").write_text(_LOG4J2)
        for info in infos:
            self._node_dir(info.node_id).mkdir(parents=True, exist_ok=True)
            self._props(info.node_id).write_text(self._server_properties(info, infos))
        # Formatting starts a JVM per node; run them side by side.
        formats = [(info, self._java(jars, info.node_id, "format.log",
                                     ["kafka.tools.StorageTool", "format", "-t", cluster_id,
                                      "-c", str(self._props(info.node_id))]))
                   for info in infos]
        for info, proc in formats:
            if proc.wait() != 0:
                log = self._node_dir(info.node_id) / "format.out"
                raise KafkaServerError(f"formatting Kafka storage failed:\n{_tail(log)}")
        for info in infos:
            info.pid = self._spawn(jars, info.node_id)
        bootstrap = ",".join(f"127.0.0.1:{n.port}" for n in infos)
        state = {"version": self.version, "cluster_id": cluster_id, "bootstrap": bootstrap,
                 "pinned": pinned, "nodes": [asdict(n) for n in infos]}
        self._write_state(state)
        self._wait_ready(state, infos)
        return state

    def _spawn(self, jars: Path, node_id: int) -> int:
        proc = self._java(jars, node_id, "server.log", ["kafka.Kafka", str(self._props(node_id))])
        self._children[node_id] = proc
        return proc.pid

    def _java(
        self, jars: Path, node_id: int, log_name: str, args: list[str]
    ) -> subprocess.Popen[bytes]:
        node_dir = self._node_dir(node_id)
        cmd = ["java", *JVM_OPTS,
               f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.properties'}",
               f"-Dfluvial.kafka.log={node_dir / log_name}",
               "-cp", f"{jars}/*", *args]
        out_name = log_name.replace(".log", ".out")
        with (node_dir / out_name).open("ab") as out:
            # A new session: Ctrl-C in the terminal that started it must not kill the broker.
            return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_ready(self, state: dict[str, Any], infos: list[NodeInfo]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            dead = [n for n in infos if not self._alive(n)]
            if dead:
                log = self._node_dir(dead[0].node_id) / "server.log"
                raise KafkaServerError(
                    f"Kafka node {dead[0].node_id} exited during start-up; log tail:\n{_tail(log)}"
                )
            if _probe(state["bootstrap"], len(state["nodes"]), 2.0):
                return
            time.sleep(0.2)
        log = self._node_dir(infos[0].node_id) / "server.log"
        raise KafkaServerError(
            f"Kafka at {state['bootstrap']} did not answer within {READY_TIMEOUT_S:.0f} s; "
            f"log tail ({log}):\n{_tail(log)}"
        )

    def _signal_and_wait(self, infos: list[NodeInfo], sig: int, timeout_s: float) -> list[NodeInfo]:
        """Signal the live nodes and wait; return those still alive at the deadline."""
        for info in infos:
            if self._alive(info):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(info.pid, sig)
        deadline = time.monotonic() + timeout_s
        alive = list(infos)
        while alive and time.monotonic() < deadline:
            alive = [n for n in alive if self._alive(n)]
            if alive:
                time.sleep(0.1)
        for info in infos:  # reap our own children so they do not linger as zombies
            child = self._children.get(info.node_id)
            if child is not None and child.poll() is not None:
                del self._children[info.node_id]
        return alive

    def _stop_locked(self, state: dict[str, Any]) -> None:
        infos = self._node_infos(state)
        stubborn = self._signal_and_wait(infos, signal.SIGTERM, STOP_TIMEOUT_S)
        if self._signal_and_wait(stubborn, signal.SIGKILL, 5.0):
            raise KafkaServerError(f"Kafka processes {[n.pid for n in stubborn]} would not die")
        for info in infos:
            shutil.rmtree(self._node_dir(info.node_id), ignore_errors=True)
        shutil.rmtree(self.state_dir / "users", ignore_errors=True)
        shutil.rmtree(self._tls_dir, ignore_errors=True)
        self._state_file.unlink(missing_ok=True)

    def _server_properties(self, info: NodeInfo, infos: list[NodeInfo]) -> str:
        rf = min(3, len(infos))
        min_isr = 2 if rf >= 3 else 1
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in infos)
        props = {
            "process.roles": "broker,controller",
            "node.id": info.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{info.port},"
                         f"CONTROLLER://127.0.0.1:{info.controller_port},"
                         f"SASL_PLAINTEXT://127.0.0.1:{info.sasl_port},"
                         f"SASL_SSL://127.0.0.1:{info.sasl_ssl_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{info.port},"
                                    f"SASL_PLAINTEXT://127.0.0.1:{info.sasl_port},"
                                    f"SASL_SSL://127.0.0.1:{info.sasl_ssl_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map":
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,"
                "SASL_SSL:SASL_SSL",
            # Clients that must authenticate (tests of broker_credentials).
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'user_{SASL_USER}="{SASL_PASSWORD}";',
            # SASL over TLS, the usual production set-up: a certificate for
            # 127.0.0.1/localhost signed by a CA made for this cluster.
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": self._tls_dir / "server-keystore.pem",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": "PLAIN,OAUTHBEARER",
            "listener.name.sasl_ssl.plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'user_{SASL_USER}="{SASL_PASSWORD}";',
            # Unsigned JWTs (alg "none"), checked for expiry only: tests of oauth_cb.
            "listener.name.sasl_ssl.oauthbearer.sasl.jaas.config":
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
            "log.dirs": self._node_dir(info.node_id) / "data",
            # fluvial creates every topic it uses; auto-creation would hide bugs.
            "auto.create.topics.enable": "false",
            "num.partitions": 1,
            "default.replication.factor": rf,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 4,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": 4,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": 0,
            # A crashed node's old registration blocks its restart until this
            # session expires (default 9 s); fault tests restart nodes often.
            "broker.session.timeout.ms": 4000,
            "broker.heartbeat.interval.ms": 1000,
            # A 2-core machine shared with the tests themselves.
            "num.network.threads": 2,
            "num.io.threads": 4,
            "num.recovery.threads.per.data.dir": 1,
            "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
            "log.segment.bytes": 64 * 1024 * 1024,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    # -- context manager -----------------------------------------------------------
    def __enter__(self) -> KafkaServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fluvial.testing.kafka_server",
                                     description="Run a local Apache Kafka for tests.")
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--state-dir", default=None,
                        help="pids, ports and data (default: $FLUVIAL_KAFKA_STATE or ./.kafka)")
    parser.add_argument("--nodes", type=int, default=1, help="number of broker+controller nodes")
    parser.add_argument("--version", default=KAFKA_VERSION, help="Apache Kafka version")
    args = parser.parse_args(argv)
    server = KafkaServer(args.state_dir, nodes=args.nodes, version=args.version)
    try:
        if args.command == "start":
            print(server.start(pin=True))
            if not server.started:
                print(f"(reused the running Kafka in {server.state_dir})", file=sys.stderr)
        elif args.command == "stop":
            server.stop()
        else:
            status = server.status()
            if status is None:
                print(f"no Kafka recorded in {server.state_dir}", file=sys.stderr)
                return 1
            print(status["bootstrap"])
            for node in status["nodes"]:
                alive = "alive" if node["alive"] else "DEAD"
                print(f"node {node['node_id']}: pid {node['pid']} port {node['port']} {alive}",
                      file=sys.stderr)
            return 0 if all(n["alive"] for n in status["nodes"]) else 1
    except KafkaServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def make_tls_files(folder: Path) -> None:
    """A CA (``ca.pem``) and a broker certificate for 127.0.0.1/localhost signed by it,
    with its key, as Kafka's PEM keystore (``server-keystore.pem``); made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise KafkaServerError("openssl is needed to make the test broker's TLS certificate: "
                               "apt-get install -y openssl")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "3650", "-subj", "/CN=fluvial test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "3650", "-extfile", "san.cnf"],
    ]
    for step in steps:
        done = subprocess.run([openssl, *step], cwd=folder, capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise KafkaServerError(f"openssl {step[0]} failed: {done.stderr[-2000:]}")
    keystore = (folder / "server.key").read_text() + (folder / "server.pem").read_text()
    (folder / "server-keystore.pem").write_text(keystore)


def _cluster_id() -> str:
    """A random KRaft cluster id (base64 of a UUID) that does not start with ``-``:
    the storage tool takes such an id for an option (1 id in 64: a CI run failed so)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


if __name__ == "__main__":
    sys.exit(main())
