"""An exactly-once worker for crash tests (configured by env; see test_exactly_once.py).

Source → agent: count per account in a table and send one output record per
event. CRASH_AT=offsets|commit|after_commit with CRASH_ON=N makes the process
die (``os._exit``, no clean-up) at that point of its N-th transaction commit:
before the offsets are sent to the transaction (changelogs and outputs sent),
before the commit, or right after it (stores not yet persisted). DUMP=path
makes a timer write the table's contents there every 0.2 s.
"""

import json
import os

import fluvial as faust

app = faust.App(os.environ["TEST_APP_ID"], broker="kafka://localhost:1", store="rocksdb://",
                topic_partitions=2, broker_commit_interval=0.3, broker_commit_every=500,
                broker_max_poll_records=500,
                processing_guarantee="exactly_once")
topic = app.topic(os.environ["TEST_TOPIC"], partitions=2)
out = app.topic(os.environ["TEST_OUT"], partitions=2)
counts = app.Table("counts", default=int)

CRASH_AT = os.environ.get("CRASH_AT", "")
CRASH_ON = int(os.environ.get("CRASH_ON", "0"))
DUMP = os.environ.get("DUMP", "")


@app.agent(topic)
async def count(orders: faust.Stream[dict[str, str]]) -> None:
    async for event in orders.events():
        order = event.value
        # Keyed per source partition: the stream is not repartitioned, so each
        # key lives in the table partition of the events that write it.
        counts[f'{order["account"]}|{event.message.partition}'] += 1
        await out.send(key=order["account"].encode(), value=event.key)


@app.task
async def arm_crash() -> None:
    if not CRASH_AT:
        return
    producer = app.producer
    send_offsets = producer.send_offsets_to_transaction  # type: ignore[attr-defined]
    commit = producer.commit_transaction  # type: ignore[attr-defined]
    seen = {"offsets": 0, "commit": 0}

    async def crashing_send_offsets(offsets: dict, metadata: object) -> None:  # type: ignore[type-arg]
        seen["offsets"] += 1
        if CRASH_AT == "offsets" and seen["offsets"] >= CRASH_ON:
            os._exit(9)
        await send_offsets(offsets, metadata)

    async def crashing_commit() -> None:
        seen["commit"] += 1
        if CRASH_AT == "commit" and seen["commit"] >= CRASH_ON and seen["offsets"]:
            os._exit(9)
        await commit()
        if CRASH_AT == "after_commit" and seen["commit"] >= CRASH_ON and seen["offsets"]:
            os._exit(9)

    producer.send_offsets_to_transaction = crashing_send_offsets  # type: ignore[attr-defined]
    producer.commit_transaction = crashing_commit  # type: ignore[attr-defined]


@app.timer(interval=0.2)
async def dump() -> None:
    if DUMP:
        with open(DUMP + ".tmp", "w") as out_file:
            json.dump(dict(counts.items()), out_file)
        os.replace(DUMP + ".tmp", DUMP)
