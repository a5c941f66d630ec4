"""faust-streaming pipelines, written as a Faust user would (runs in .bench/venvs/faust).

plain: an agent iterates the orders stream and counts.
table: the Faust README example, group_by on the account id then a Table increment
(the key is a function returning ``order.account_id`` that also starts the clock).

The agent records the wall time of its first event (for table: the first source
event, before the repartition topic) and of its N-th event, writes the result file
and sends itself SIGTERM, which the Faust worker handles as a graceful shutdown.
Table store: in-memory (``store='memory://'``), with its changelog topic as usual.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import faust
from _common import PARTITIONS, Settings, write_result

settings = Settings.from_env()
N = settings.events
STORE = "memory://"


class Order(faust.Record, serializer="json"):
    account_id: str
    product_id: str
    amount: int
    price: float


app = faust.App(
    settings.app_id,
    broker=f"kafka://{settings.bootstrap}",
    store=STORE,
    topic_partitions=PARTITIONS,
    consumer_auto_offset_reset="earliest",
    datadir=settings.state_dir,
    web_enabled=False,
)
orders_topic = app.topic(settings.topic, value_type=Order, partitions=PARTITIONS)


def finish(first_ts: float, last_ts: float, **extra: Any) -> None:
    write_result(
        settings,
        system="faust-streaming",
        version=faust.__version__,
        store=STORE if settings.pipeline == "table" else "-",
        events=N,
        first_ts=first_ts,
        last_ts=last_ts,
        **extra,
    )
    os.kill(os.getpid(), signal.SIGTERM)


if settings.pipeline == "plain":

    @app.agent(orders_topic)
    async def count_orders(orders: faust.Stream[Order]) -> None:
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
