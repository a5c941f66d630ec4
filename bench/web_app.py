"""The worker of ``python -m bench.web``: a counting agent, its table, a table_route view.

Each source message is JSON ``{"account_id": ..., "ts": <send time>, "phase": ...}``
keyed by account id. The agent counts per account in a Table (what the view
serves) and records ``time.time() - ts`` per phase: the end-to-end latency
from the producer's ``produce()`` call to the agent. ``GET /bench/latencies/``
returns them once the phases are over.

Settings from the environment: BENCH_APP_ID, BENCH_TOPIC, and FLUVIAL_* (broker,
web port, datadir).
"""

from __future__ import annotations

import os
import time
from typing import Any

import fluvial as faust
from fluvial import web

PARTITIONS = 8

app = faust.App(os.environ.get("BENCH_APP_ID", "bench-web"), broker="kafka://localhost",
                topic_partitions=PARTITIONS, store="memory://")
topic = app.topic(os.environ.get("BENCH_TOPIC", "bench-web"), key_type=str,
                  partitions=PARTITIONS)
counts = app.Table("counts", default=int)
#: Phase name -> latencies (seconds) of the events this worker processed.
latencies: dict[str, list[float]] = {}


@app.agent(topic)
async def count(stream: faust.Stream[dict[str, Any]]) -> None:
    async for key, order in stream.items():
        now = time.time()
        counts[key] += 1
        phase = order["phase"]
        seen = latencies.get(phase)
        if seen is None:
            seen = latencies[phase] = []
        seen.append(now - order["ts"])


@app.page("/count/{key}/")
@app.table_route(table=counts, match_info="key")
async def get_count(view: web.View, request: web.Request, key: str) -> web.Response:
    return view.json({"key": key, "count": counts[key]})


@app.page("/bench/latencies/")
async def get_latencies(view: web.View, request: web.Request) -> web.Response:
    return view.json(latencies)
