"""quixstreams pipelines, the Quix equivalent of the Faust ones (runs in .bench/venvs/quix).

plain: ``sdf.update(...)`` counts every message.
table: ``sdf.group_by("account_id")`` (a repartition topic, like Faust's group_by),
then a stateful ``apply`` that increments a per-account count with state.get/set.
State store: Quix's default, RocksDB with changelog topics. For table the clock starts
at the first source event (an ``sdf.update`` before the group_by), not at the first
event out of the repartition topic.

On the N-th event the callback records the time, writes the result and calls
``app.stop()``, which ends ``app.run()`` after the current message.
"""

from __future__ import annotations

import time
from importlib.metadata import version
from typing import Any

from _common import Settings, write_result
from quixstreams import Application, State

settings = Settings.from_env()
N = settings.events

app = Application(
    broker_address=settings.bootstrap,
    consumer_group=settings.app_id,
    auto_offset_reset="earliest",
    state_dir=settings.state_dir,
    loglevel="WARNING",
)
orders_topic = app.topic(settings.topic, key_deserializer="str", value_deserializer="json")
sdf = app.dataframe(orders_topic)

seen = 0
first_ts = 0.0  # plain: first event; table: first source event, before the repartition
first_table_ts = 0.0
accounts = 0


def finish(**extra: Any) -> None:
    write_result(
        settings,
        system="quixstreams",
        version=version("quixstreams"),
        store="rocksdb" if settings.pipeline == "table" else "-",
        events=N,
        first_ts=first_ts,
        last_ts=time.time(),
        **extra,
    )
    app.stop()


def tick() -> None:
    global seen, first_ts, first_table_ts
    seen += 1
    if seen == 1:
        if settings.pipeline == "plain":
            first_ts = time.time()
        else:
            first_table_ts = time.time()
    elif seen == N:
        if settings.pipeline == "plain":
            finish()
        else:
            finish(first_table_after_s=first_table_ts - first_ts, accounts=accounts)


def start_clock(order: dict[str, Any]) -> None:
    global first_ts
    if not first_ts:
        first_ts = time.time()


def count_order(order: dict[str, Any]) -> None:
    tick()


def count_by_account(order: dict[str, Any], state: State) -> int:
    global accounts
    count = state.get("count", 0)
    if count == 0:
        accounts += 1
    count += 1
    state.set("count", count)
    tick()
    return count


if settings.pipeline == "plain":
    sdf = sdf.update(count_order)
else:
    sdf = sdf.update(start_clock)
    sdf = sdf.group_by("account_id")
    sdf = sdf.apply(count_by_account, stateful=True)

if __name__ == "__main__":
    app.run()
