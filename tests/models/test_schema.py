"""Schema: key/value decoding and encoding for every kind of type, with Faust precedence."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import msgspec
import pydantic
import pytest

from fluvial.exceptions import KeyDecodeError, ValueDecodeError
from fluvial.models import Record
from fluvial.serializers import Schema


class Order(Record, namespace="schema-tests.Order"):
    account_id: str
    amount: int


class Packed(Record, serializer="json|binary", namespace="schema-tests.Packed"):
    a: int


@dataclass
class DataOrder:
    account_id: str
    amount: int


class StructOrder(msgspec.Struct):
    account_id: str
    amount: int


class PydanticOrder(pydantic.BaseModel):
    account_id: str
    amount: int


FAUST_VALUE = b'{"account_id": "a", "amount": 2, "__faust": {"ns": "schema-tests.Order"}}'


def test_record_value_round_trip_through_compiled_callables() -> None:
    schema = Schema(key_type=str, value_type=Order)
    decode = schema.value_decoder("json")
    encode = schema.value_encoder("json")
    assert decode(FAUST_VALUE) == Order("a", 2)
    assert decode(encode(Order("a", 2))) == Order("a", 2)
    assert schema.key_decoder("raw")(b"k1") == "k1"
    assert schema.key_encoder("raw")("k1") == b"k1"
    assert schema.value_decoder("json") is decode  # compiled once


@pytest.mark.parametrize("typ", [DataOrder, StructOrder, PydanticOrder])
def test_dataclass_struct_and_pydantic_values(typ: type) -> None:
    schema = Schema(value_type=typ)
    value = typ(account_id="a", amount=2)
    data = schema.dumps_value(value, default_serializer="json")
    assert data is not None
    assert msgspec.json.decode(data) == {"account_id": "a", "amount": 2}
    assert schema.loads_value(data, default_serializer="json") == value
    # Faust-written payloads carry __faust; foreign types ignore it.
    assert schema.loads_value(FAUST_VALUE, default_serializer="json") == value
    # And through a non-JSON codec.
    pickled = schema.dumps_value(value, default_serializer="json", serializer="yaml")
    assert schema.loads_value(pickled, default_serializer="json", serializer="yaml") == value


def test_untyped_json_reconstructs_registered_models() -> None:
    schema = Schema()
    assert schema.loads_value(FAUST_VALUE, default_serializer="json") == Order("a", 2)
    assert schema.loads_value(b'{"x": 1}', default_serializer="json") == {"x": 1}
    assert schema.loads_key(b"raw-key", default_serializer="raw") == b"raw-key"


def test_scalar_types_from_raw_and_json() -> None:
    assert Schema(key_type=int).loads_key(b"42", default_serializer="raw") == 42
    assert Schema(key_type=float).loads_key(b"1.5", default_serializer="raw") == 1.5
    assert Schema(value_type=int).loads_value(b"7", default_serializer="json") == 7
    assert Schema(value_type=str).loads_value(b'"hi"', default_serializer="json") == "hi"
    assert Schema(value_type=bytes).loads_value(b"\x00", default_serializer="raw") == b"\x00"
    assert Schema(value_type=Decimal).loads_value(b'"1.10"', default_serializer="json") == Decimal(
        "1.10"
    )
    assert Schema(key_type=int).dumps_key(42, default_serializer="raw") == b"42"


def test_serializer_precedence_schema_then_model_then_default() -> None:
    packed = Packed(1).dumps()
    # No topic serializer: the model's own (json|binary) beats the app default.
    assert Schema(value_type=Packed).loads_value(packed, default_serializer="json") == Packed(1)
    # Explicit topic serializer wins when decoding.
    explicit = Schema(value_type=Order, value_serializer="yaml")
    data = explicit.dumps_value(Order("a", 1), default_serializer="json")
    assert data is not None and b"account_id: a" in data
    assert explicit.loads_value(data, default_serializer="json") == Order("a", 1)
    # Encoding a model instance: its own serializer comes first (as in Faust).
    encoded = Schema().dumps_value(Packed(1), default_serializer="json")
    assert encoded == packed


def test_none_bodies() -> None:
    assert Schema(value_type=str).loads_value(None, default_serializer="json") is None
    with pytest.raises(ValueDecodeError, match="received None"):
        Schema(value_type=Order).loads_value(None, default_serializer="json")
    assert (
        Schema(value_type=Order, allow_empty=True).loads_value(None, default_serializer="json")
        is None
    )
    with pytest.raises(KeyDecodeError):
        Schema(key_type=Order).loads_key(None, default_serializer="json")
    assert Schema().dumps_value(None, default_serializer="json") is None
    assert Schema().dumps_value(b"as-is", default_serializer="json") == b"as-is"


def test_decode_errors_chain_the_cause() -> None:
    with pytest.raises(ValueDecodeError, match="Order") as info:
        Schema(value_type=Order).loads_value(b"{not json", default_serializer="json")
    assert isinstance(info.value.__cause__, msgspec.DecodeError)
    with pytest.raises(KeyDecodeError) as key_info:
        Schema(key_type=int).loads_key(b"abc", default_serializer="raw")
    assert isinstance(key_info.value.__cause__, ValueError)
    with pytest.raises(ValueDecodeError, match="amount"):
        Schema(value_type=Order).loads_value(b'{"account_id": "a"}', default_serializer="json")
