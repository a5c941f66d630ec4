"""The app the README's command lines run against (``-A tests.cli.readme_app:app``)."""

from __future__ import annotations

from typing import Any

import fluvial as faust

app = faust.App("readme-shop", broker="memory://readme-shop", store="rocksdb://",
                web_enabled=False)


class Order(faust.Record):
    """An order."""

    account_id: str
    amount: int


orders = app.topic("orders", value_type=Order, partitions=2)
order_count = app.Table("order_count", default=int)


@app.agent(orders)
async def process(stream: Any) -> None:
    async for order in stream:
        order_count[order.account_id] += 1
