"""The app the fault harness runs as several worker processes (configured by env).

Each event ``{"id": i, "key": k}`` is re-keyed by ``k`` (a repartition topic),
counted in a table, and its id sent to an output topic, so the harness can
tell from Kafka alone whether any event was lost or processed twice.
"""

import os

import fluvial as faust

PARTITIONS = int(os.environ.get("FAULT_PARTITIONS", "6"))

app = faust.App(
    os.environ["FAULT_APP_ID"],
    broker="kafka://localhost:1",
    store="rocksdb://",
    topic_partitions=PARTITIONS,
    topic_replication_factor=int(os.environ.get("FAULT_REPLICAS", "3")),
    processing_guarantee=os.environ.get("FAULT_GUARANTEE", "at_least_once"),
    broker_commit_interval=float(os.environ.get("FAULT_COMMIT_INTERVAL", "0.5")),
    broker_session_timeout=float(os.environ.get("FAULT_SESSION_TIMEOUT", "6")),
    broker_heartbeat_interval=1.0,
)
events = app.topic(os.environ["FAULT_SOURCE"], partitions=PARTITIONS)
output = app.topic(os.environ["FAULT_OUTPUT"], partitions=PARTITIONS)
counts = app.Table("counts", default=int, partitions=PARTITIONS)


@app.agent(events)
async def count(stream: faust.Stream[dict[str, object]]) -> None:
    async for event in stream.group_by(lambda e: e["key"], name="by-key"):
        key = str(event["key"])
        counts[key] += 1
        output.send_soon(key=key, value=event["id"])
