"""quixstreams latency pipelines (``bench.latency``; runs in .bench/venvs/quix).

plain: ``sdf.update`` records each event's latency.
table: ``sdf.group_by("account_id")`` (a repartition topic), then a stateful
``apply`` that increments a per-account count (RocksDB state, Quix's default, with
its changelog) and records the latency. ``app.stop()`` ends the run.
"""

from __future__ import annotations

import os
from typing import Any

from _common import LatencyRecorder
from quixstreams import Application, State

PIPELINE = os.environ["BENCH_PIPELINE"]
recorder = LatencyRecorder()

app = Application(
    broker_address=os.environ["BENCH_BOOTSTRAP"],
    consumer_group=os.environ["BENCH_APP_ID"],
    auto_offset_reset="earliest",
    state_dir=os.environ["BENCH_STATE_DIR"],
    loglevel="WARNING",
)
ticks = app.topic(os.environ["BENCH_TOPIC"], key_deserializer="str", value_deserializer="json")
sdf = app.dataframe(ticks)


def see(tick: dict[str, Any]) -> None:
    if recorder.see(tick["ts"], tick["phase"]):
        app.stop()


def count(tick: dict[str, Any], state: State) -> None:
    state.set("count", state.get("count", 0) + 1)
    see(tick)


if PIPELINE == "plain":
    sdf = sdf.update(see)
else:
    sdf = sdf.group_by("account_id")
    sdf = sdf.update(count, stateful=True)

if __name__ == "__main__":
    app.run()
