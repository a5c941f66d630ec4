import fluvial as faust


class Customer(faust.Record):
    name: str
    tier: str


class Order(faust.Record):
    customer_id: str
    amount: float


app = faust.App('enrich-orders', broker='kafka://localhost')
customers_topic = app.topic('customers', key_type=str, value_type=Customer)
orders_topic = app.topic('orders', key_type=str, value_type=Order)
customers = app.Table('customers', value_type=Customer)


@app.agent(customers_topic)
async def keep_customers(stream):
    async for customer_id, customer in stream.items():
        customers[customer_id] = customer


@app.agent(orders_topic)
async def enrich(orders):
    # Orders are keyed by customer id, like the table: each order meets
    # its customer's current row (left join: None for unknown customers).
    async for order, customer in orders.left_join(customers):
        tier = customer.tier if customer else 'unknown'
        print(f'{order.customer_id} ordered {order.amount} ({tier})')


if __name__ == '__main__':
    app.main()
