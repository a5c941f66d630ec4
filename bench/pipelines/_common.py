"""What every pipeline script shares: the order shape, the settings and the result file.

Pipeline scripts run in three different virtualenvs (fluvial's, faust-streaming's,
quixstreams'), so this module uses the standard library only. Scripts import it as
``_common`` because Python puts the script's own folder first on ``sys.path``.

Settings come from the environment, set by ``bench.run``:

BENCH_PIPELINE   ``plain``, ``table`` or ``table-eos`` (table with exactly-once; fluvial only),
                 ``plain-avro`` or ``table-avro`` (Avro values on a schema registry; fluvial only)
BENCH_EVENTS     N, the number of events after which the pipeline reports and stops
BENCH_TOPIC      source topic (8 partitions, already filled on Kafka)
BENCH_APP_ID     application id / consumer group, unique per run
BENCH_RESULT     path of the JSON result file to write
BENCH_BOOTSTRAP  host:port of the Kafka broker (peers; fluvial reads FLUVIAL_BROKER)
BENCH_STATE_DIR  a scratch folder for state stores, unique per run
BENCH_ACCOUNTS   distinct account ids in the orders (default 1000; fluvial on memory://
                 produces them itself)
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ACCOUNTS = 1000
PRODUCTS = 100
PARTITIONS = 8
SEED = 7
PIPELINES = ("plain", "table", "table-eos", "plain-avro", "table-avro")
#: The Avro name of the order record (its schema is derived from fluvial's Order Record).
AVRO_ORDER_NAME = "bench.Order"


def orders(n: int, seed: int = SEED, accounts: int = ACCOUNTS
           ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``n`` (key, order) pairs: keyed by order id, ~``accounts`` distinct accounts."""
    rng = random.Random(seed)
    for i in range(n):
        yield f"o{i}", {
            "account_id": f"a{rng.randrange(accounts)}",
            "product_id": f"p{rng.randrange(PRODUCTS)}",
            "amount": rng.randint(1, 10),
            "price": round(rng.uniform(1.0, 500.0), 2),
        }


@dataclass(frozen=True)
class Settings:
    pipeline: str
    events: int
    topic: str
    app_id: str
    result_path: str
    bootstrap: str
    state_dir: str

    @classmethod
    def from_env(cls) -> Settings:
        pipeline = os.environ["BENCH_PIPELINE"]
        if pipeline not in PIPELINES:
            raise SystemExit(f"BENCH_PIPELINE must be one of {', '.join(PIPELINES)}, "
                             f"not {pipeline!r}")
        return cls(
            pipeline=pipeline,
            events=int(os.environ["BENCH_EVENTS"]),
            topic=os.environ["BENCH_TOPIC"],
            app_id=os.environ["BENCH_APP_ID"],
            result_path=os.environ["BENCH_RESULT"],
            bootstrap=os.environ.get("BENCH_BOOTSTRAP", ""),
            state_dir=os.environ.get("BENCH_STATE_DIR", ""),
        )


def write_result(
    settings: Settings,
    *,
    system: str,
    version: str,
    store: str,
    events: int,
    first_ts: float,
    last_ts: float,
    **extra: Any,
) -> None:
    """Write the run's result atomically, so the parent never reads half a file.

    The process's peak resident memory so far (``max_rss_mb``) is reported with it.
    """
    import resource

    payload = {
        "system": system,
        "version": version,
        "pipeline": settings.pipeline,
        "store": store,
        "events": events,
        "first_ts": first_ts,
        "last_ts": last_ts,
        "written_ts": time.time(),
        # Linux reports kilobytes.
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **extra,
    }
    tmp = settings.result_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f)
    os.replace(tmp, settings.result_path)


class LatencyRecorder:
    """What a latency pipeline (``bench.latency``) records per event, and its result file.

    Events are JSON ``{"account_id", "ts", "phase"}`` from ``bench.paced``: ``ts`` is
    the producer's ``time.time()`` at ``produce()``. ``prime`` events only tell the
    bench the pipeline is ready (the file BENCH_READY is created at the first);
    the others are counted, and those of phase ``measure`` have their latency
    (now minus ``ts``) and receive time recorded. The run ends at the BENCH_EVENTS-th
    counted event, or at the first event more than BENCH_SECONDS (the run's length)
    plus BENCH_GRACE seconds after the first counted one (the pipeline fell behind).
    Peak RSS (``ru_maxrss``) is reported too.
    """

    def __init__(self) -> None:
        from array import array

        self.events = int(os.environ["BENCH_EVENTS"])
        self.result_path = os.environ["BENCH_RESULT"]
        self.ready_path = os.environ["BENCH_READY"]
        self.allowed = float(os.environ["BENCH_SECONDS"]) + float(os.environ["BENCH_GRACE"])
        self.deadline = float("inf")  # set at the first counted event
        self.latencies = array("d")
        self.received = array("d")
        self.seen = 0
        self.ready = False

    def see(self, ts: float, phase: str) -> bool:
        """Record one event; True once the run is over (the caller stops the pipeline)."""
        now = time.time()
        if phase == "prime":
            if not self.ready:
                self.ready = True
                with open(self.ready_path, "w"):
                    pass
            return False
        self.seen += 1
        if self.seen == 1:
            self.deadline = now + self.allowed
        if phase == "measure":
            self.latencies.append(now - ts)
            self.received.append(now)
        if self.seen >= self.events or now > self.deadline:
            self.finish()
            return True
        return False

    def finish(self, **extra: Any) -> None:
        """Write the result file (atomically)."""
        import resource

        payload = {
            "events": self.events,
            "seen": self.seen,
            "status": "ok" if self.seen >= self.events else "behind",
            "latencies": self.latencies.tolist(),
            "received": self.received.tolist(),
            # Linux reports kilobytes.
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            **extra,
        }
        tmp = self.result_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(payload, f)
        os.replace(tmp, self.result_path)
