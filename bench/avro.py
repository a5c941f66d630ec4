"""The Avro schema of the bench's orders: derived from the Record the pipeline reads.

The producer writes with it, and fluvial's Order in ``pipelines/fluvial_app.py``
(same fields, Avro name ``bench.Order``) derives the same schema, so both use one
schema id.
"""

from __future__ import annotations

from typing import Any

import fluvial as faust
from bench.pipelines._common import AVRO_ORDER_NAME
from fluvial.schemas import avro_schema_of


class Order(faust.Record, serializer="avro", namespace=AVRO_ORDER_NAME):
    account_id: str
    product_id: str
    amount: int
    price: float


def order_schema() -> Any:
    """The orders' Avro schema (JSON-like data)."""
    return avro_schema_of(Order)
