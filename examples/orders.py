"""The Faust README's order-count example, runnable on the embedded broker.

    FLUVIAL_BROKER=memory:// python examples/orders.py worker --duration 10

Only the import differs from the Faust program: ``import fluvial as faust``.
A timer produces random orders; the agent repartitions them by account and
counts them in a table; another timer prints the table.
"""

import random

import fluvial as faust


class Order(faust.Record, serializer="json"):
    account_id: str
    product_id: str
    amount: int
    price: float


app = faust.App("hello-app", broker="kafka://localhost:9092")
orders_kafka_topic = app.topic("orders", value_type=Order)

# Our table is sharded amongst worker instances, and replicated
# with standby copies to take over if one of the nodes fail.
order_count_by_account = app.Table("order_count", default=int)

ACCOUNTS = [f"account-{i}" for i in range(5)]


@app.agent(orders_kafka_topic)
async def process(orders: faust.Stream[Order]) -> None:
    async for order in orders.group_by(Order.account_id):
        order_count_by_account[order.account_id] += 1


@app.timer(interval=0.1)
async def produce_orders(app: faust.App) -> None:
    for _ in range(50):
        await orders_kafka_topic.send(
            key=None,
            value=Order(
                account_id=random.choice(ACCOUNTS),
                product_id=f"product-{random.randint(1, 20)}",
                amount=random.randint(1, 5),
                price=round(random.uniform(1, 100), 2),
            ),
        )


@app.timer(interval=2.0)
async def report(app: faust.App) -> None:
    counts = dict(sorted(order_count_by_account.items()))
    total = sum(counts.values())
    print(f"orders counted: {total:>6}  by account: {counts}", flush=True)


if __name__ == "__main__":
    app.main()
