"""fluvial pipelines: the same Faust program as ``faust_app.py``, with ``import fluvial as faust``.

Run as ``python bench/pipelines/fluvial_app.py worker``; ``FLUVIAL_BROKER`` picks the
transport (``kafka://host:port`` or ``memory://``).

plain: an agent iterates the orders stream and counts.
table: the Faust README example, group_by on the account id then a Table increment
(the key is a function returning ``order.account_id`` that also starts the clock).
table-eos: the same with ``processing_guarantee="exactly_once"`` (transactions).
plain-avro, table-avro: plain and table with Avro values in the Confluent wire format
(``serializer="avro"``, schema registry at ``FLUVIAL_SCHEMA_REGISTRY_URL``).

On ``memory://`` the broker lives inside this process, so a task first sends the N
orders with ``topic.send`` and the agent starts iterating only once they are all
written: production is not timed. On Kafka the bench fills the topic beforehand.

The agent records the wall time of its first event (for table: the first source
event, before the repartition topic) and of its N-th event, writes the result file
and sends itself SIGTERM (the worker's ordinary shutdown signal), so the script
depends on nothing beyond the Faust API.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from _common import ACCOUNTS, AVRO_ORDER_NAME, PARTITIONS, Settings, orders, write_result

import fluvial as faust

settings = Settings.from_env()
N = settings.events
STORE = "memory://"
BROKER = os.environ.get("FLUVIAL_BROKER", f"kafka://{settings.bootstrap or 'localhost:9092'}")
IN_MEMORY = BROKER.startswith("memory")
AVRO = settings.pipeline.endswith("-avro")
PIPELINE = settings.pipeline.removesuffix("-avro")
RECORD_OPTIONS: dict[str, Any] = (
    {"serializer": "avro", "namespace": AVRO_ORDER_NAME} if AVRO else {"serializer": "json"}
)


class Order(faust.Record, **RECORD_OPTIONS):
    account_id: str
    product_id: str
    amount: int
    price: float


app = faust.App(
    settings.app_id,
    broker=BROKER,
    store=STORE,
    topic_partitions=PARTITIONS,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    processing_guarantee="exactly_once" if settings.pipeline == "table-eos" else "at_least_once",
)
orders_topic = app.topic(settings.topic, value_type=Order, partitions=PARTITIONS)

# BENCH_SENSORS: "monitor" (the default Monitor, as a worker comes), "none" (no
# sensor at all), "prometheus" (also /metrics rendered every second, as scraped).
SENSORS = os.environ.get("BENCH_SENSORS", "monitor")
if SENSORS == "none":

    @app.task
    async def without_sensors() -> None:
        app.sensors.remove(app.monitor)

elif SENSORS == "prometheus":
    from fluvial.sensors.prometheus import exposition

    @app.task
    async def scrape() -> None:
        while True:
            await exposition(app)
            await asyncio.sleep(1.0)

# Set once the input is in the topic; on Kafka it already is.
produced = asyncio.Event()
if not IN_MEMORY:
    produced.set()
else:

    @app.task
    async def produce_orders() -> None:
        for key, fields in orders(N, accounts=int(os.environ.get("BENCH_ACCOUNTS", ACCOUNTS))):
            await orders_topic.send(key=key, value=Order(**fields))
        produced.set()


def finish(first_ts: float, last_ts: float, **extra: Any) -> None:
    write_result(
        settings,
        system="fluvial",
        version=getattr(faust, "__version__", "?"),
        store=STORE if PIPELINE != "plain" else "-",
        events=N,
        first_ts=first_ts,
        last_ts=last_ts,
        transport="memory" if IN_MEMORY else "kafka",
        sensors=SENSORS,
        **extra,
    )
    os.kill(os.getpid(), signal.SIGTERM)


if PIPELINE == "plain":

    @app.agent(orders_topic)
    async def count_orders(orders: faust.Stream[Order]) -> None:
        await produced.wait()
        seen = 0
        first_ts = 0.0
        async for _order in orders:
            seen += 1
            if seen == 1:
                first_ts = time.time()
            elif seen == N:
                finish(first_ts, time.time())

else:
    order_count_by_account = app.Table("order_count", default=int)
    source_first_ts = 0.0

    def account_id(order: Order) -> str:
        """``Order.account_id``, and the clock starts at the first source event.

        Timing from the first event out of the repartition topic would leave out the
        time spent filling it (12 s of 30 s for faust-streaming, say); a callable key
        is the Faust API's own way to run code at the source, and costs one call.
        """
        global source_first_ts
        if not source_first_ts:
            source_first_ts = time.time()
        return order.account_id

    @app.agent(orders_topic)
    async def process(orders: faust.Stream[Order]) -> None:
        await produced.wait()
        seen = 0
        first_table_ts = 0.0
        async for order in orders.group_by(account_id, name="account_id"):
            order_count_by_account[order.account_id] += 1
            seen += 1
            if seen == 1:
                first_table_ts = time.time()
            elif seen == N:
                finish(
                    source_first_ts,
                    time.time(),
                    first_table_after_s=first_table_ts - source_first_ts,
                    accounts=len(order_count_by_account),
                    table_total=sum(order_count_by_account.values()),
                )


if __name__ == "__main__":
    app.main()
