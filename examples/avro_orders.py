from datetime import datetime, timezone
from decimal import Decimal
from typing import Optional

import fluvial as faust
from fluvial.models.fields import DecimalField


class Order(faust.Record, serializer='avro'):
    account_id: str
    amount: Decimal = DecimalField(max_digits=10, max_decimal_places=2)
    placed_at: datetime
    coupon: Optional[str] = None  # a field with a default: adding it was compatible


app = faust.App(
    'avro-orders',
    broker='kafka://localhost',
    schema_registry_url='http://localhost:8081',
)
orders_topic = app.topic('avro-orders', value_type=Order)


@app.agent(orders_topic)
async def show(orders):
    async for order in orders:
        print(f'{order.account_id} paid {order.amount} at {order.placed_at:%H:%M:%S}')


@app.timer(interval=1.0)
async def place_order(app):
    await show.send(value=Order(
        account_id='alice',
        amount=Decimal('9.99'),
        placed_at=datetime.now(timezone.utc),
    ))


if __name__ == '__main__':
    app.main()
