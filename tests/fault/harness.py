"""Fault harness: several worker processes of ``fault_app`` on a real Kafka, with faults.

A run produces ``events`` events (``{"id": i, "key": "k<i % keys>"}``) to a
source topic, starts ``workers`` worker processes, injects one kind of fault
while they work, waits until the group has committed everything, stops the
workers cleanly, and then reads the results from Kafka alone:

- the table, from its changelog (last value of each key), compared with the
  number of events of each key;
- the output topic (read with ``read_committed``), one record per processed
  event: ids missing there were lost, ids seen twice were processed twice.

Faults (``--fault``):

``none``
    no fault: the baseline.
``sigkill``
    every ``--interval`` seconds one worker, chosen at random, is killed with
    SIGKILL and started again.
``broker``
    one broker of the cluster is killed (SIGKILL) for ``--interval`` seconds
    mid-run, then restarted (needs a cluster this harness started, nodes=3).
``sigstop``
    one worker is stopped with SIGSTOP for longer than the session timeout, so
    its partitions move to the others, then resumed: its late writes must be
    fenced (under exactly-once) or only duplicate, never lose, events.

The full-size runs (1,000,000 events, three brokers, three workers)::

    python -m tests.fault.harness --events 1000000 --fault sigkill
    python -m tests.fault.harness --events 1000000 --fault sigkill --guarantee exactly_once
    python -m tests.fault.harness --events 1000000 --fault broker
    python -m tests.fault.harness --events 1000000 --fault sigstop --guarantee exactly_once

or all of them with ``make faults``. The test suite runs small versions
(``tests/fault/test_faults.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from fluvial.testing.kafka_server import KafkaServer

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 6
FAULTS = ("none", "sigkill", "broker", "sigstop")


@dataclass
class Report:
    """What a run found; ``ok`` when nothing was lost (and nothing duplicated under EOS)."""

    fault: str
    guarantee: str
    static: bool
    events: int
    workers: int
    seconds: float = 0.0
    faults_injected: int = 0
    output_records: int = 0
    lost: int = 0
    duplicates: int = 0
    #: Keys whose table count is below the number of their events.
    keys_short: int = 0
    #: Sum of (table count - events) over keys: increments applied twice.
    table_surplus: int = 0
    #: Times a partition's committed offset was seen lower than before.
    offsets_backwards: int = 0
    worker_exits: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        if self.lost or self.offsets_backwards:
            return False
        if self.fault == "sigstop" and self.guarantee == "at_least_once":
            # Without transactions nothing fences a zombie's changelog writes that
            # were in flight when it froze: they land after the new owner's and may
            # roll a few counts back. Reported, not judged; exactly-once fences them.
            return True
        if self.keys_short:
            return False
        if self.guarantee == "exactly_once":
            return self.duplicates == 0 and self.table_surplus == 0
        # At-least-once: a table increment applied twice comes from an event
        # processed twice, which the output shows too.
        return 0 <= self.table_surplus <= self.duplicates

    def summary(self) -> str:
        rate = self.events / self.seconds if self.seconds else 0.0
        return (
            f"fault={self.fault} guarantee={self.guarantee} "
            f"membership={'static' if self.static else 'dynamic'} events={self.events:,} "
            f"workers={self.workers} faults_injected={self.faults_injected} "
            f"time={self.seconds:.1f}s ({rate:,.0f} events/s) | lost={self.lost} "
            f"processed_twice={self.duplicates} table_short_keys={self.keys_short} "
            f"table_surplus={self.table_surplus} offsets_backwards={self.offsets_backwards} "
            f"-> {'OK' if self.ok else 'FAILED'}"
        )


class Worker:
    """One worker process of the fault app, restartable with the same identity."""

    def __init__(self, index: int, env: dict[str, str], logdir: Path) -> None:
        self.index = index
        self.env = env
        self.log_path = logdir / f"worker-{index}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.exits: list[int] = []

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fluvial", "-A", "tests.fault.fault_app:app", "worker",
             "-l", "info"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **self.env},
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait(10)

    def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.exits.append(code)
        return code

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (a clean stop: final checkpoint); SIGKILL if it does not exit in time."""
        if not self.alive():
            return self.proc.returncode if self.proc is not None else None
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        code = self.wait(timeout)
        if code is None:
            self.kill()
        return code

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class FaultRun:
    """One run of the fault app against ``bootstrap``."""

    def __init__(self, bootstrap: str, *, events: int, workers: int = 3, keys: int = 1000,
                 guarantee: str = "at_least_once", fault: str = "none", interval: float = 4.0,
                 replicas: int = 3, workdir: Path, server: KafkaServer | None = None,
                 seed: int = 7, timeout: float = 600.0, static: bool = False,
                 feed_seconds: float = 15.0, max_faults: int | None = None) -> None:
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
        if fault == "broker" and server is None:
            raise ValueError("the broker fault needs a cluster started by this harness")
        self.bootstrap = bootstrap
        self.events = events
        self.keys = keys
        self.guarantee = guarantee
        self.fault = fault
        self.interval = interval
        self.replicas = replicas
        self.workdir = workdir
        self.server = server
        self.rng = random.Random(seed)
        self.timeout = timeout
        #: At most this many kills in a SIGKILL loop (None: until the work is done).
        self.max_faults = max_faults
        suffix = uuid.uuid4().hex[:8]
        self.app_id = f"fault-{suffix}"
        self.source = f"fault-events-{suffix}"
        self.output = f"fault-output-{suffix}"
        self.workers = [
            Worker(i, {
                "FLUVIAL_BROKER": f"kafka://{bootstrap}",
                "FLUVIAL_DATADIR": str(workdir / f"worker-{i}"),
                "FAULT_APP_ID": self.app_id,
                "FAULT_SOURCE": self.source,
                "FAULT_OUTPUT": self.output,
                "FAULT_GUARANTEE": guarantee,
                "FAULT_REPLICAS": str(replicas),
                "FAULT_PARTITIONS": str(PARTITIONS),
                # A URL of its own per worker: standby replicas are placed by URL.
                "FLUVIAL_WEB_PORT": str(7600 + i),
                # Static membership: a restarted worker takes its old place without
                # a rebalance (as in a StatefulSet); without it, every kill rebalances.
                **({"FLUVIAL_CONSUMER_GROUP_INSTANCE_ID": f"{self.app_id}-{i}"} if static
                   else {}),
            }, workdir)
            for i in range(workers)
        ]
        self.report = Report(fault, guarantee, static, events, workers)
        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        self._probe: Consumer | None = None
        self._high_marks: dict[tuple[str, int], int] = {}
        self._checker: Consumer | None = None
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                                   "enable.idempotence": True, "batch.num.messages": 10000,
                                   "queue.buffering.max.messages": 1_000_000})
        self._fed = 0
        self.feed_seconds = feed_seconds

    # -- the run -----------------------------------------------------------------------
    def run(self) -> Report:
        self._create_source()
        expected: Counter[str] = Counter(f"k{i % self.keys}" for i in range(self.events))
        # A fifth of the events before the workers start, the rest fed over
        # feed_seconds while they work: the fault always hits a run in progress,
        # however fast the workers are.
        self._feed(self.events // 5)
        started = time.monotonic()
        for worker in self.workers:
            worker.start()
        try:
            self._drive_until_done(started)
        finally:
            for worker in self.workers:
                worker.stop()
            for client in (self._probe, self._checker):
                if client is not None:
                    client.close()
            self.report.worker_exits = [code for w in self.workers for code in w.exits]
        self.report.seconds = time.monotonic() - started
        self._check(expected)
        return self.report

    def _create_source(self) -> None:
        futures = self._admin.create_topics([NewTopic(self.source, PARTITIONS, self.replicas)])
        futures[self.source].result(30)

    def _feed(self, upto: int) -> None:
        """Produce events ``[fed, upto)`` (``{"id": i, "key": "k<i % keys>"}``) and flush."""
        producer = self._producer
        for i in range(self._fed, upto):
            value = b'{"id":%d,"key":"k%d"}' % (i, i % self.keys)
            while True:
                try:
                    producer.produce(self.source, value, b"e%d" % i)
                    break
                except BufferError:
                    producer.poll(0.1)
        self._fed = max(self._fed, upto)
        if producer.flush(120) != 0:
            raise RuntimeError("could not produce the input events")

    def _feed_on_schedule(self, started: float) -> None:
        first = self.events // 5
        share = min(1.0, (time.monotonic() - started) / self.feed_seconds)
        self._feed(first + int((self.events - first) * share))

    def _drive_until_done(self, started: float) -> None:
        """Inject the fault while the work is under way; return once all is committed.

        The first fault comes when a fifth of the events are counted (a kill
        loop starts at a twentieth), so it always hits a run in progress.
        """
        deadline = started + self.timeout
        next_fault = 0.0
        broker_down: int | None = None
        stopped: Worker | None = None
        done_since: float | None = None
        last_offsets: tuple[int, ...] = ()
        while True:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(
                    f"the workers did not finish within {self.timeout:.0f} s; "
                    + self._diagnostics()
                )
            for worker in self.workers:
                if worker is not stopped and not worker.alive() and worker.proc is not None:
                    code = worker.wait(0)
                    raise RuntimeError(f"worker {worker.index} exited by itself ({code}):\n"
                                       f"{worker.tail()}")
            self._feed_on_schedule(started)
            complete, offsets, counted = self._progress()
            complete = complete and self._fed == self.events
            first = not self.report.faults_injected
            if self.fault == "sigkill":
                more = self.max_faults is None or self.report.faults_injected < self.max_faults
                if more and not complete and now >= next_fault and (counted >= 0.05 or not first):
                    victim = self.rng.choice(self.workers)
                    victim.kill()
                    victim.start()
                    self.report.faults_injected += 1
                    next_fault = now + self.interval
            elif self.fault == "broker" and self.server is not None:
                if broker_down is None and first and counted >= 0.2:
                    broker_down = self.rng.randint(1, self.server.nodes)
                    self.server.kill_node(broker_down)
                    self.report.faults_injected += 1
                    next_fault = now + self.interval
                elif broker_down is not None and now >= next_fault:
                    self.server.restart_node(broker_down)
                    broker_down = None
            elif self.fault == "sigstop":
                if stopped is None and first and counted >= 0.2:
                    stopped = self.rng.choice(self.workers)
                    stopped.signal(signal.SIGSTOP)
                    self.report.faults_injected += 1
                    # Past the session timeout (6 s in the fault app): the group moves
                    # on; and past exactly-once's transaction timeout (10 s): the
                    # coordinator aborts the zombie's transaction meanwhile.
                    next_fault = now + max(self.interval, 14.0)
                elif stopped is not None and now >= next_fault:
                    stopped.signal(signal.SIGCONT)
                    stopped = None
            settled = broker_down is None and stopped is None
            if settled and complete and offsets == last_offsets:
                # Done once everything is committed and stays so for a moment
                # (a rebalance may still hand partitions around).
                done_since = done_since or now
                if now - done_since >= 3.0:
                    return
            else:
                done_since = None
            last_offsets = offsets
            time.sleep(0.5)

    def _only_markers_between(self, tp: TopicPartition, start: int, end: int) -> bool:
        """Under exactly-once the last offsets of a partition written in transactions
        may be transaction markers (or aborted records), which a read_committed
        consumer never receives and so never commits past: read what is there."""
        if self.guarantee != "exactly_once" or tp.topic == self.source or end - start > 50:
            return False
        if self._checker is None:
            self._checker = self._consumer(f"fault-checker-{uuid.uuid4().hex[:8]}")
        checker = self._checker
        checker.assign([TopicPartition(tp.topic, tp.partition, start)])
        deadline = time.monotonic() + 5.0
        try:
            while time.monotonic() < deadline:
                for msg in checker.consume(10, 0.2):
                    if msg.error() is None:
                        return False  # a committed record the group has not processed
                (position,) = checker.position([TopicPartition(tp.topic, tp.partition)])
                if position.offset >= end:
                    return True
            return False
        finally:
            checker.unassign()

    def _progress(self) -> tuple[bool, tuple[int, ...], float]:
        """(whether the group committed everything, the committed offsets, the
        fraction of the events counted)."""
        topics = [self.source, *self._repartition_topics()]
        if len(topics) < 2:
            return False, (), 0.0
        if self._probe is None:
            self._probe = self._consumer(self.app_id)
        try:
            tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
            committed = self._probe.committed(tps, timeout=10)
            offsets = tuple(tp.offset for tp in committed)
            for tp in committed:
                if tp.error is not None or tp.offset < 0:
                    continue  # not known right now (coordinator moving): no evidence
                key = (tp.topic, tp.partition)
                if tp.offset < self._high_marks.get(key, -1):
                    self.report.offsets_backwards += 1
                self._high_marks[key] = max(tp.offset, self._high_marks.get(key, -1))
            counted = sum(max(tp.offset, 0) for tp in committed if tp.topic != self.source)
            complete = True
            for tp in committed:
                _, high = self._probe.get_watermark_offsets(tp, timeout=10, cached=False)
                done = max(tp.offset, 0)
                if done < high and not self._only_markers_between(tp, done, high):
                    complete = False
            return complete, offsets, counted / self.events
        except KafkaException:
            return False, (), 0.0

    def _repartition_topics(self) -> list[str]:
        names = self._admin.list_topics(timeout=10).topics
        # ``{agent}-{source}-{name}-repartition``, as Faust names them.
        return sorted(n for n in names
                      if f"-{self.source}-" in n and n.endswith("-repartition"))

    def _consumer(self, group: str) -> Consumer:
        return Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})

    # -- reading the results ---------------------------------------------------------
    def _check(self, expected: Counter[str]) -> None:
        report = self.report
        changelog = f"{self.app_id}-counts-changelog"
        table: dict[str, int] = {}
        for key, value in self._read_all(changelog):
            if key is not None:
                name = json.loads(key)
                if value is None:
                    table.pop(name, None)
                else:
                    table[name] = json.loads(value)
        ids: Counter[int] = Counter()
        for _, value in self._read_all(self.output):
            if value is not None:
                ids[json.loads(value)] += 1
        report.output_records = sum(ids.values())
        report.lost = sum(1 for i in range(self.events) if i not in ids)
        report.duplicates = sum(n - 1 for n in ids.values() if n > 1)
        report.keys_short = sum(1 for k, n in expected.items() if table.get(k, 0) < n)
        report.table_surplus = sum(table.get(k, 0) - n for k, n in expected.items())

    def _read_all(self, topic: str) -> Iterator[tuple[bytes | None, bytes | None]]:
        consumer = self._consumer(f"fault-reader-{uuid.uuid4().hex[:8]}")
        try:
            parts = [TopicPartition(topic, p, 0) for p in range(PARTITIONS)]
            ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1]
                    for p in parts}
            consumer.assign(parts)
            remaining = {p for p, high in ends.items() if high > 0}
            idle = 0
            while remaining and idle < 20:
                batch = consumer.consume(10_000, 0.5)
                if not batch:
                    idle += 1
                    # Transaction markers take offsets too: ask where we are.
                    for tp in consumer.position([TopicPartition(topic, p) for p in remaining]):
                        if tp.offset >= ends[tp.partition]:
                            remaining.discard(tp.partition)
                    continue
                idle = 0
                for msg in batch:
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise RuntimeError(f"reading {topic}: {err}")
                    yield msg.key(), msg.value()
                    partition, offset = msg.partition(), msg.offset()
                    assert partition is not None and offset is not None
                    if offset + 1 >= ends[partition]:
                        remaining.discard(partition)
            if remaining:
                raise RuntimeError(f"{topic} partitions {sorted(remaining)} not read to the end")
        finally:
            consumer.close()

    def _diagnostics(self) -> str:
        return "\n".join(f"--- worker {w.index} (alive={w.alive()}):\n{w.tail(15)}"
                         for w in self.workers)


@contextmanager
def cluster(nodes: int) -> Iterator[tuple[str, KafkaServer | None]]:
    """A cluster for a run: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else ``nodes`` brokers."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external, None
        return
    with tempfile.TemporaryDirectory(prefix="fluvial-faults-") as tmp:
        server = KafkaServer(Path(tmp) / "kafka", nodes=nodes)
        bootstrap = server.start(pin=False)
        try:
            yield bootstrap, server
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fault.harness",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--fault", choices=[*FAULTS, "all"], default="all")
    parser.add_argument("--guarantee", choices=["at_least_once", "exactly_once", "both"],
                        default="both")
    parser.add_argument("--interval", type=float, default=4.0,
                        help="seconds between SIGKILLs / broker downtime")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--static", action="store_true",
                        help="static group membership (consumer_group_instance_id per worker)")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--max-faults", type=int, default=None,
                        help="at most this many kills in a SIGKILL loop (default: until done)")
    args = parser.parse_args(argv)
    faults = FAULTS[1:] if args.fault == "all" else (args.fault,)
    guarantees = (("at_least_once", "exactly_once") if args.guarantee == "both"
                  else (args.guarantee,))
    reports: list[Report] = []
    with cluster(args.nodes) as (bootstrap, server):
        for fault in faults:
            for guarantee in guarantees:
                with tempfile.TemporaryDirectory(prefix="fluvial-fault-run-") as workdir:
                    run = FaultRun(bootstrap, events=args.events, workers=args.workers,
                                   keys=args.keys, guarantee=guarantee, fault=fault,
                                   interval=args.interval, replicas=min(3, args.nodes),
                                   workdir=Path(workdir), server=server, timeout=args.timeout,
                                   static=args.static, max_faults=args.max_faults)
                    report = run.run()
                print(report.summary(), flush=True)
                reports.append(report)
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
