"""The ceiling: how fast a bare confluent-kafka loop reads the bench's topic here.

    .venv/bin/python -m bench.ceiling                 # 1M orders, one local broker
    .venv/bin/python -m bench.ceiling --events 300000

The same 8-partition topic of small JSON orders as ``bench.run``, read by one
``confluent_kafka.Consumer`` in a plain ``while`` loop (``consume(10000)``, the
batch size fluvial's consumer thread uses), three ways:

consume only       the messages reach Python, nothing else
+ msgspec decode   each value decoded into a msgspec Struct (no Record, no Event)
+ count per key    a dict increment per event on top (what the table pipeline's
                   agent does, without the repartition hop)

No asyncio, no offsets tracked, no commits: an upper bound for any Python
stream processor on librdkafka on this machine, to read fluvial's figures against.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from confluent_kafka import Consumer

from bench import kafka
from fluvial.transport.kafka.consumer import CONSUMER_DEFAULTS


class Order(msgspec.Struct):
    account_id: str
    product_id: str
    amount: int
    price: float


def read_all(bootstrap: str, topic: str, events: int,
             handle: Callable[[list[Any]], None], overrides: dict[str, Any]) -> float:
    """Events/s from the first message to the N-th, with ``handle`` applied per batch."""
    consumer = Consumer({
        **CONSUMER_DEFAULTS,  # fluvial's fetch settings
        **overrides,
        "bootstrap.servers": bootstrap,
        "group.id": f"ceiling-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([topic])
    seen = 0
    first = 0.0
    try:
        while seen < events:
            # Like fluvial's consumer thread: take what is queued, block only when
            # nothing is (consume(n, t) with t > 0 waits for n messages).
            batch = consumer.consume(10_000, 0) or consumer.consume(1, 0.05)
            if not batch:
                continue
            if not seen:
                first = time.perf_counter()
            handle(batch)
            seen += len(batch)
        return events / (time.perf_counter() - first)
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a librdkafka consumer setting over fluvial's, e.g. "
                             "max.partition.fetch.bytes=16777216 (repeatable)")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    decode = msgspec.json.Decoder(Order).decode
    counts: dict[str, int] = {}

    def consume_only(batch: list[Any]) -> None:
        for m in batch:
            m.value()

    def with_decode(batch: list[Any]) -> None:
        for m in batch:
            decode(m.value())

    def with_count(batch: list[Any]) -> None:
        for m in batch:
            order = decode(m.value())
            counts[order.account_id] = counts.get(order.account_id, 0) + 1

    with kafka.kafka_broker() as bootstrap:
        topic = f"ceiling-{uuid.uuid4().hex[:8]}"
        kafka.create_topic(bootstrap, topic)
        kafka.produce_orders(bootstrap, topic, args.events)
        for name, handle in (("consume only", consume_only), ("+ msgspec decode", with_decode),
                             ("+ count per key", with_count)):
            rate = read_all(bootstrap, topic, args.events, handle, overrides)
            print(f"{name:18} {rate:>10,.0f} events/s")
        kafka.delete_topic(bootstrap, topic)


if __name__ == "__main__":
    main()
