"""Records and a protobuf message class shared by the schema codec tests.

``Reading`` is built at import from a descriptor, as ``protoc``'s generated
``reading_pb2.py`` would build it (protoc is not needed to run the tests)::

    syntax = "proto3";
    package fluvial.tests;
    message Reading { string sensor = 1; double value = 2; }
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Optional

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import fluvial as faust


class Item(faust.Record):
    sku: str
    quantity: int = 1


class Order(faust.Record, serializer="avro"):
    id: str
    items: list[Item]
    placed_at: datetime
    amount: Decimal
    tags: dict[str, str]
    note: Optional[str] = None


class Payment(faust.Record, serializer="json_schema"):
    order_id: str
    amount: float
    items: list[Item]
    memo: Optional[str] = None


def _reading_class() -> type:
    file = descriptor_pb2.FileDescriptorProto(name="fluvial_tests_reading.proto",
                                              package="fluvial.tests", syntax="proto3")
    message = file.message_type.add(name="Reading")
    message.field.add(name="sensor", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    message.field.add(name="value", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.Default()
    try:
        descriptor = pool.FindMessageTypeByName("fluvial.tests.Reading")
    except KeyError:
        pool.Add(file)
        descriptor = pool.FindMessageTypeByName("fluvial.tests.Reading")
    return message_factory.GetMessageClass(descriptor)


Reading = _reading_class()

__all__ = ["Item", "Order", "Payment", "Reading"]
