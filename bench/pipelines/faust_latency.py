"""faust-streaming latency pipelines (``bench.latency``; runs in .bench/venvs/faust).

plain: an agent iterates the events and records each one's latency.
table: group_by the account id, increment a per-account count in a Table
(memory store, with its changelog), then record the latency: the repartition hop
is part of it. The same program as ``fluvial_latency.py``.
"""

from __future__ import annotations

import os
import signal

import faust
from _common import PARTITIONS, LatencyRecorder

PIPELINE = os.environ["BENCH_PIPELINE"]
recorder = LatencyRecorder()


class Tick(faust.Record, serializer="json"):
    account_id: str
    ts: float
    phase: str


app = faust.App(
    os.environ["BENCH_APP_ID"],
    broker=f"kafka://{os.environ['BENCH_BOOTSTRAP']}",
    store="memory://",
    topic_partitions=PARTITIONS,
    consumer_auto_offset_reset="earliest",
    datadir=os.environ["BENCH_STATE_DIR"],
    web_enabled=False,
)
ticks = app.topic(os.environ["BENCH_TOPIC"], value_type=Tick, partitions=PARTITIONS)


def finish() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


if PIPELINE == "plain":

    @app.agent(ticks)
    async def plain(stream: faust.Stream[Tick]) -> None:
        async for tick in stream:
            if recorder.see(tick.ts, tick.phase):
                finish()

else:
    counts = app.Table("counts", default=int)

    @app.agent(ticks)
    async def table(stream: faust.Stream[Tick]) -> None:
        async for tick in stream.group_by(Tick.account_id, name="account"):
            counts[tick.account_id] += 1
            if recorder.see(tick.ts, tick.phase):
                finish()


if __name__ == "__main__":
    app.main()
