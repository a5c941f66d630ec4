"""Micro-benchmark: ns per record to decode/encode a small JSON Record.

Run: ``.venv/bin/python -m bench.records_decode``
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fluvial.models import Record
from fluvial.serializers import Schema


class Order(Record, serializer="json"):
    account_id: str
    product_id: str
    amount: int
    price: float


PLAIN = b'{"account_id":"a1","product_id":"p1","amount":3,"price":9.99}'
FAUST = (
    b'{"account_id":"a1","product_id":"p1","amount":3,"price":9.99,'
    b'"__faust":{"ns":"bench.records_decode.Order"}}'
)
BATCH = 10_000
ROUNDS = 7


def _ns_per_item(run: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        run()
        best = min(best, (time.perf_counter_ns() - start) / BATCH)
    return best


def main() -> None:
    decode = Order._decoder()
    plain = [PLAIN] * BATCH
    faust = [FAUST] * BATCH
    orders = [decode(p) for p in plain]
    value_decoder = Schema(value_type=Order).value_decoder("json")
    value_encoder = Schema(value_type=Order).value_encoder("json")
    results = {
        "decode compiled (no __faust key)": _ns_per_item(lambda: [decode(p) for p in plain]),
        "decode compiled (Faust payload)": _ns_per_item(lambda: [decode(p) for p in faust]),
        "Order.loads_many": _ns_per_item(lambda: Order.loads_many(faust)),
        "Order.loads (per call)": _ns_per_item(lambda: [Order.loads(p) for p in faust]),
        "Schema.value_decoder": _ns_per_item(lambda: [value_decoder(p) for p in faust]),
        "Order(...) construction": _ns_per_item(
            lambda: [Order("a1", "p1", 3, 9.99) for _ in range(BATCH)]
        ),
        "order.dumps()": _ns_per_item(lambda: [o.dumps() for o in orders]),
        "Schema.value_encoder": _ns_per_item(lambda: [value_encoder(o) for o in orders]),
    }
    assert decode(FAUST) == orders[0]
    width = max(map(len, results))
    for name, ns in results.items():
        print(f"{name:<{width}}  {ns:8.0f} ns/record")


if __name__ == "__main__":
    main()
