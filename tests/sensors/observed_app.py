"""A worker app for observability tests: events flow all the time (a timer feeds them).

``OBSERVED_APP_ID`` names the app (and its topics); ``FLUVIAL_BROKER`` the broker.
"""

from __future__ import annotations

import logging
import os
import random

import fluvial as faust

logger = logging.getLogger("observed")

app_id = os.environ.get("OBSERVED_APP_ID", "observed")
app = faust.App(app_id, topic_partitions=4, table_standby_replicas=1,
                broker_commit_interval=0.5)
clicks = app.topic(f"{app_id}-clicks", value_type=str, partitions=4)
counts = app.Table(f"{app_id}-counts", default=int, partitions=4)


@app.agent(clicks, name="count_clicks")
async def count_clicks(stream: faust.Stream[str]) -> None:
    async for page in stream:
        counts[page] += 1
        if counts[page] == 1:
            logger.info("first click on %s", page, extra={"page": page})


@app.timer(0.05)
async def feed() -> None:
    for _ in range(20):
        page = f"page{random.randrange(50)}"
        await clicks.send(key=page.encode(), value=page)
