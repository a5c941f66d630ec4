"""A group_by + table worker for crash tests (configured by env; see test_crash_recovery.py).

CRASH_AT=flush|commit|after_commit with CRASH_ON=N makes the process die
(``os._exit``, no clean-up) at that point of its N-th checkpoint: before it
waits for the producer's deliveries (changelog records sent, maybe not delivered), before the
offset commit (changelog delivered, store persisted), or right after it.
DUMP=path makes a timer write the table's contents there every 0.2 s.
"""

import json
import os

import fluvial as faust

app = faust.App(os.environ["TEST_APP_ID"], broker="kafka://localhost:1", store="rocksdb://",
                topic_partitions=2, broker_commit_interval=0.3)
topic = app.topic(os.environ["TEST_TOPIC"], partitions=2)
counts = app.Table("counts", default=int)

CRASH_AT = os.environ.get("CRASH_AT", "")
CRASH_ON = int(os.environ.get("CRASH_ON", "0"))
DUMP = os.environ.get("DUMP", "")


@app.agent(topic)
async def count(orders: faust.Stream[dict[str, str]]) -> None:
    async for order in orders.group_by(lambda o: o["account"], name="account"):
        counts[order["account"]] += 1


@app.task
async def arm_crash() -> None:
    if not CRASH_AT:
        return
    producer = app.producer
    consumer = app.conductor.consumer
    assert consumer is not None
    wait_delivered, commit = producer.wait_delivered, consumer.commit
    seen = {"flush": 0, "commit": 0}

    async def crashing_wait_delivered(seq: int) -> None:
        seen["flush"] += 1
        if CRASH_AT == "flush" and seen["flush"] >= CRASH_ON:
            os._exit(9)
        await wait_delivered(seq)

    async def crashing_commit(offsets: dict) -> None:  # type: ignore[type-arg]
        seen["commit"] += 1
        if CRASH_AT == "commit" and seen["commit"] >= CRASH_ON:
            os._exit(9)
        await commit(offsets)
        if CRASH_AT == "after_commit" and seen["commit"] >= CRASH_ON:
            os._exit(9)

    producer.wait_delivered = crashing_wait_delivered  # type: ignore[method-assign]
    consumer.commit = crashing_commit  # type: ignore[method-assign]


@app.timer(interval=0.2)
async def dump() -> None:
    if DUMP:
        with open(DUMP + ".tmp", "w") as out:
            json.dump(dict(counts.items()), out)
        os.replace(DUMP + ".tmp", DUMP)
