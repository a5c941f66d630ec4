"""Avro schemas and JSON Schemas derived from Records: valid, and they carry the data."""

from __future__ import annotations

import io
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Optional

import fastavro
import jsonschema
import pytest

import fluvial as faust
from fluvial.codecs import json_dumps, json_loads
from fluvial.models.fields import DecimalField
from fluvial.schemas import SchemaDerivationError, avro_schema_of, json_schema_of
from fluvial.schemas.derive import record_to_data


class Address(faust.Record):
    city: str
    zip_code: Optional[str] = None


class Customer(faust.Record, namespace="shop.Customer"):
    id: uuid.UUID
    name: str
    born: date
    joined: datetime
    balance: Decimal = DecimalField(max_digits=12, max_decimal_places=2)
    home: Address
    previous: list[Address]
    scores: dict[str, float]
    flags: set[str]
    vip: bool = False
    visits: int = 0
    nickname: Optional[str] = None
    photo: bytes = b""


CUSTOMER = Customer(
    id=uuid.UUID("12345678-1234-5678-1234-567812345678"), name="Ann", born=date(1990, 5, 17),
    joined=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
    balance=Decimal("1234.50"), home=Address("Oslo", "0150"), previous=[Address("Bergen")],
    scores={"q1": 0.5}, flags={"beta"}, vip=True, visits=3, photo=b"\x00\x01",
)


def test_the_avro_schema_names_types_defaults_and_nested_records() -> None:
    schema = avro_schema_of(Customer)
    assert (schema["name"], schema["namespace"]) == ("Customer", "shop")
    fields = {f["name"]: f for f in schema["fields"]}
    assert fields["id"]["type"] == {"type": "string", "logicalType": "uuid"}
    assert fields["born"]["type"] == {"type": "int", "logicalType": "date"}
    assert fields["joined"]["type"] == {"type": "long", "logicalType": "timestamp-micros"}
    assert fields["balance"]["type"] == {"type": "bytes", "logicalType": "decimal",
                                         "precision": 12, "scale": 2}
    assert fields["home"]["type"]["type"] == "record"
    # A named type is defined once, then referred to by its full name.
    assert fields["previous"]["type"] == {"type": "array",
                                          "items": f"{Address.__module__}.Address"}
    assert fields["scores"]["type"] == {"type": "map", "values": "double"}
    assert fields["nickname"] == {"name": "nickname", "type": ["null", "string"], "default": None}
    assert fields["visits"]["default"] == 0 and "default" not in fields["name"]
    assert "default" not in fields["photo"]  # bytes defaults are not written


def test_records_survive_the_derived_avro_schema() -> None:
    parsed = fastavro.parse_schema(avro_schema_of(Customer))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, record_to_data(CUSTOMER))
    buffer.seek(0)
    back = Customer.from_data(fastavro.schemaless_reader(buffer, parsed, parsed))
    assert back.home == Address("Oslo", "0150") and back.previous == [Address("Bergen")]
    assert back.joined == CUSTOMER.joined and back.born == CUSTOMER.born
    assert back.balance == Decimal("1234.50") and back.id == CUSTOMER.id
    assert back.flags == {"beta"} and back.photo == b"\x00\x01"


def test_the_json_schema_validates_the_records_json_and_refuses_bad_data() -> None:
    schema = json_schema_of(Customer)
    assert schema["required"] == ["id", "name", "born", "joined", "balance", "home", "previous",
                                  "scores", "flags"]
    data = json_loads(json_dumps(record_to_data(CUSTOMER)))
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    validator.validate(data)
    with pytest.raises(jsonschema.ValidationError, match="'city' is a required property"):
        validator.validate({**data, "home": {"zip_code": "1"}})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**data, "visits": "three"})


@pytest.mark.parametrize("derive", [avro_schema_of, json_schema_of])
def test_a_type_without_equivalent_is_named_with_its_field(derive: Any) -> None:
    class Odd(faust.Record):
        ok: str
        when: complex

    with pytest.raises(SchemaDerivationError, match=r"Odd\.when: no .* for type <class 'complex'>"):
        derive(Odd)


def test_avro_maps_need_string_keys() -> None:
    class Counts(faust.Record):
        by_id: dict[int, int]

    with pytest.raises(SchemaDerivationError, match=r"Counts\.by_id: Avro maps have string keys"):
        avro_schema_of(Counts)
