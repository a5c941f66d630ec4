"""A group_by + Table worker with a table_route view (see test_routing_kafka.py).

Configured by the environment: TEST_APP_ID, TEST_TOPIC (the source topic,
6 partitions); the web and broker settings come as FLUVIAL_* variables.
"""

import os

import fluvial as faust
from fluvial import web

PARTITIONS = 6

app = faust.App(os.environ["TEST_APP_ID"], broker="kafka://localhost:1",
                topic_partitions=PARTITIONS, broker_commit_interval=0.5)
topic = app.topic(os.environ["TEST_TOPIC"], partitions=PARTITIONS)
counts = app.Table("counts", default=int)


@app.agent(topic)
async def count(orders: faust.Stream[dict[str, str]]) -> None:
    async for order in orders.group_by(lambda o: o["account"], name="account"):
        counts[order["account"]] += 1


@app.page("/count/{key}/")
@app.table_route(table=counts, match_info="key")
async def get_count(view: web.View, request: web.Request, key: str) -> web.Response:
    return view.json({"key": key, "count": counts[key], "url": app.conf.canonical_url})
