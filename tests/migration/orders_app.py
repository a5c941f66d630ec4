"""An order-count app written for faust-streaming, as its users write them.

tests/migration/test_migration.py runs this file with faust-streaming 0.15.3
(adding ``import faust_recovery_fix`` after ``import faust``, as the README's
Migrating section advises), then a copy whose only change is ``import faust`` ->
``import fluvial as faust`` (same app id, same topics), then the Faust version
again. Configured by environment:
``MIGRATION_BOOTSTRAP``, ``MIGRATION_APP_ID``, ``MIGRATION_TOPIC`` and
``MIGRATION_SNAPSHOT`` (where a timer writes the tables as JSON).
"""

import json
import os
from datetime import timedelta

import faust


class Order(faust.Record, serializer="json"):
    order_id: int
    account_id: str
    product: str
    ts: float


app = faust.App(
    os.environ["MIGRATION_APP_ID"],
    broker=f"kafka://{os.environ['MIGRATION_BOOTSTRAP']}",
    store="memory://",
    topic_partitions=4,
    broker_commit_interval=0.5,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
)
orders_topic = app.topic(os.environ["MIGRATION_TOPIC"], value_type=Order, partitions=4)

order_count = app.Table("order_count", default=int)
per_window = app.Table("per_window", default=int).tumbling(
    100, expires=timedelta(days=1)).relative_to_field(Order.ts)
products = app.SetTable("products")


@app.agent(orders_topic)
async def count_orders(orders):
    async for order in orders.group_by(Order.account_id):
        order_count[order.account_id] += 1
        per_window[order.account_id] += 1
        products[order.account_id].add(order.product)


@app.timer(0.5)
async def snapshot():
    data = {
        "order_count": dict(order_count.items()),
        "per_window": sorted([key, list(window), value]
                             for (key, window), value in per_window.table.data.items()),
        "products": {key: sorted(members) for key, members in products.items()},
    }
    path = os.environ["MIGRATION_SNAPSHOT"]
    with open(path + ".tmp", "w") as out:
        json.dump(data, out)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    app.main()
