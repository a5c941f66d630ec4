"""Codecs: built-ins, composition, registry, restricted pickle."""

from __future__ import annotations

import base64
import os
import pickle
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from fluvial import codecs
from fluvial.codecs import Codec, get_codec, register
from fluvial.exceptions import ImproperlyConfiguredCodec
from fluvial.models import Record


class Item(Record, namespace="codec-tests.Item"):
    sku: str
    qty: int = 1


@dataclass
class Note:
    text: str


def test_json_encodes_faust_types() -> None:
    json = get_codec("json")
    data = {
        "item": Item("s"),
        "when": datetime(2024, 1, 2, 3, 4, 5),
        "price": Decimal("1.50"),
        "id": uuid.UUID(int=1),
        "tags": {"a"},
        "note": Note("hi"),
    }
    assert json.loads(json.dumps(data)) == {
        "item": {"sku": "s", "qty": 1, "__faust": {"ns": "codec-tests.Item"}},
        "when": "2024-01-02T03:04:05",
        "price": "1.50",
        "id": "00000000-0000-0000-0000-000000000001",
        "tags": ["a"],
        "note": {"text": "hi"},
    }
    aware = json.loads(json.dumps(datetime(2024, 1, 2, tzinfo=timezone.utc)))
    assert datetime.fromisoformat(aware.replace("Z", "+00:00")).tzinfo is not None


def test_raw_and_binary() -> None:
    assert get_codec("raw").dumps("é") == "é".encode()
    assert get_codec("raw").loads(b"\x00\x01") == b"\x00\x01"
    assert get_codec("raw").dumps(42) == b"42"
    assert get_codec("binary").dumps(b"abc") == base64.b64encode(b"abc")
    assert get_codec("binary").loads(base64.b64encode(b"abc")) == b"abc"


def test_composition_by_operator_and_name() -> None:
    chained = codecs.json() | codecs.binary()
    by_name = get_codec("json|binary")
    payload = {"a": [1, 2]}
    assert chained.dumps(payload) == by_name.dumps(payload) == base64.b64encode(b'{"a":[1,2]}')
    assert by_name.loads(by_name.dumps(payload)) == payload
    assert "json" in repr(by_name) and "binary" in repr(by_name)


def test_registry_unknown_name_lists_known_codecs() -> None:
    with pytest.raises(ImproperlyConfiguredCodec, match=r"known codecs: .*json.*raw"):
        get_codec("nope")
    with pytest.raises(ImproperlyConfiguredCodec, match="'nope'"):
        get_codec("json|nope")


def test_register_custom_codec() -> None:
    class Reverse(Codec):
        def _dumps(self, obj: Any) -> bytes:
            return bytes(obj)[::-1]

        def _loads(self, data: Any) -> Any:
            return bytes(data)[::-1]

    register("reverse-test", Reverse())
    try:
        assert get_codec("reverse-test").dumps(b"abc") == b"cba"
        assert get_codec("raw|reverse-test").loads(b"cba") == b"abc"
        assert Item("s").dumps(serializer="json|reverse-test")[::-1].startswith(b'{"sku"')
    finally:
        del codecs.codecs["reverse-test"]


def test_pickle_round_trips_data_and_registered_models() -> None:
    codec = get_codec("pickle")
    value = {"item": Item("s", 2), "when": datetime(2024, 1, 1), "d": Decimal("1.2")}
    assert codec.loads(codec.dumps(value)) == value


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


def test_restricted_pickle_refuses_dangerous_payload() -> None:
    payload = base64.b64encode(pickle.dumps(_Evil()))
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        get_codec("pickle").loads(payload)


def test_yaml_round_trip() -> None:
    codec = get_codec("yaml")
    assert codec.loads(codec.dumps({"item": Item("s"), "n": [1, 2]})) == {
        "item": {"sku": "s", "qty": 1, "__faust": {"ns": "codec-tests.Item"}},
        "n": [1, 2],
    }


def test_model_serializer_option_is_used() -> None:
    class Packed(Record, serializer="json|binary", namespace="codec-tests.Packed"):
        a: int

    data = Packed(1).dumps()
    assert base64.b64decode(data) == b'{"a":1,"__faust":{"ns":"codec-tests.Packed"}}'
    assert Packed.loads(data) == Packed(1)
