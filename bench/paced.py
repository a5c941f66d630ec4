"""A paced producer and latency percentiles, shared by ``bench.web`` and ``bench.latency``.

The producer runs in its own process (so its Python work does not share a GIL
with the bench or the pipeline) and sends ``rate`` events/s, JSON
``{"account_id": "a<k>", "ts": <time.time() at produce()>, "phase": <label>}``
keyed by account id, in ``TICKS`` bursts a second. The label comes from a
shared number the parent changes (``labels[label.value]``); ``"done"`` ends it.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from multiprocessing.sharedctypes import Synchronized

#: Producer ticks per second (the rate is sent in this many bursts).
TICKS = 100
#: Distinct account ids (message keys).
ACCOUNTS = 1000
#: While the label is this, one event per ``PRIME_INTERVAL_S`` goes out, not counted:
#: the pipeline tells it is ready by having seen one.
PRIME = "prime"
PRIME_INTERVAL_S = 0.05


def produce_paced(bootstrap: str, topic: str, rate: int, label: Synchronized[int],
                  sent: Synchronized[int], labels: Sequence[str], total: int = 0) -> None:
    """Send ``rate`` events/s until the label says ``done`` (or ``total`` were sent).

    Each event carries its send time; ``sent`` counts them (prime events aside).
    """
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1,
                         "enable.idempotence": False, "log_level": 4})
    rng = random.Random(11)
    per_tick = max(1, rate // TICKS)
    interval = per_tick / rate
    encode = json.JSONEncoder(separators=(",", ":")).encode

    def send(phase: str) -> None:
        account = f"a{rng.randrange(ACCOUNTS)}"
        value = encode({"account_id": account, "ts": time.time(), "phase": phase})
        while True:
            try:
                producer.produce(topic, value.encode(), account.encode())
                return
            except BufferError:
                producer.poll(0.01)

    while (phase := labels[label.value]) == PRIME:
        send(phase)
        producer.poll(PRIME_INTERVAL_S)
    next_at = time.perf_counter()
    count = 0
    while (phase := labels[label.value]) != "done" and not (total and count >= total):
        n = min(per_tick, total - count) if total else per_tick
        for _ in range(n):
            send(phase)
        count += n
        sent.value = count
        producer.poll(0)
        next_at += interval
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    producer.flush(30)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Count, p50, p99 and max in milliseconds (nearest rank) of latencies in seconds."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)] * 1000

    return {"n": len(ordered), "p50": rank(0.50), "p99": rank(0.99), "max": ordered[-1] * 1000}
