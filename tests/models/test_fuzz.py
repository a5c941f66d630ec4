"""Fuzzing the decoders: whatever the bytes, a decoder returns a value or raises
SerializationError — never another exception, never a hang — and a worker fed
good messages among fuzzed ones processes the good ones as it would alone."""

from __future__ import annotations

import asyncio
import base64
import json
import pickle
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Optional, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fluvial as faust
from fluvial.codecs import codecs
from fluvial.exceptions import SerializationError
from fluvial.models import IntegerField, Record, StringField
from fluvial.serializers import Schema

# Bounded so that the whole module runs in seconds on two cores.
FUZZ = settings(max_examples=150, deadline=2000,
                suppress_health_check=[HealthCheck.too_slow])


class Item(Record, serializer="json", namespace="fuzz.Item"):
    sku: str
    qty: int


class Basket(Record, serializer="json", namespace="fuzz.Basket"):
    items: list[Item]
    extra: Optional[dict[str, Item]] = None


class Payment(Record, namespace="fuzz.Payment", isodates=True, decimals=True):
    at: datetime
    amount: Decimal


class Card(Payment, namespace="fuzz.Card"):
    last4: str = ""


class Ledger(Record, namespace="fuzz.Ledger"):
    entry: Union[Payment, Item]
    history: list[Payment] = []


class Checked(Record, namespace="fuzz.Checked", validation=True):
    name: str = StringField(max_length=8)
    age: int = IntegerField(min_value=0, max_value=150)


@dataclass
class Plain:
    a: int
    b: str


VALUE_TYPES: list[Any] = [None, str, bytes, int, float, Decimal, Item, Basket, Payment, Card,
                          Ledger, Checked, Plain, list[int]]
CODECS = [*sorted(codecs), "json|binary"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["sku", "qty", "items", "extra", "at", "amount",
                                       "entry", "history", "name", "age", "a", "b",
                                       "last4", "__faust"]) | st.text(max_size=8),
                      children, max_size=6),
    max_leaves=20,
)
namespaces = st.sampled_from(["fuzz.Item", "fuzz.Basket", "fuzz.Payment", "fuzz.Card",
                              "fuzz.Ledger", "nowhere.X"])


@st.composite
def model_like(draw: st.DrawFn) -> Any:
    """JSON that looks like the models: their field names, nested, tagged or not."""
    value = draw(json_values)
    if isinstance(value, dict) and draw(st.booleans()):
        value["__faust"] = {"ns": draw(namespaces)}
    return value


class _Asks:
    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return (bytearray, (1 << 62,))


def pickled(value: Any) -> bytes:
    return base64.b64encode(pickle.dumps(value))


payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    model_like().map(lambda v: json.dumps(v).encode()),
    # Pickles, truncated or not, and one that asks for 4 EiB.
    st.tuples(json_values, st.integers(0, 200)).map(lambda t: pickled(t[0])[:t[1] or None]),
    st.just(pickled(_Asks())),
)


def decoders(typ: Any, codec: str, allow_empty: bool) -> list[Any]:
    schema = Schema(key_type=typ, value_type=typ, key_serializer=codec,
                    value_serializer=codec, allow_empty=allow_empty)
    return [schema.key_decoder(), schema.value_decoder()]


@pytest.mark.parametrize("codec", CODECS)
@FUZZ
@given(data=payloads | st.none(), typ=st.sampled_from(VALUE_TYPES), allow_empty=st.booleans())
def test_a_decoder_returns_a_value_or_raises_serialization_error(
    codec: str, data: bytes | None, typ: Any, allow_empty: bool
) -> None:
    for decode in decoders(typ, codec, allow_empty):
        try:
            decode(data)
        except SerializationError:
            pass


@FUZZ
@given(value=model_like(), typ=st.sampled_from([Item, Basket, Payment, Card, Ledger, Checked]))
def test_record_loads_and_from_data_raise_serialization_errors_only(value: Any, typ: Any
                                                                     ) -> None:
    try:
        typ.loads(json.dumps(value).encode())
    except SerializationError:
        pass
    decode = Schema(value_type=typ).value_decoder()
    try:
        decode(json.dumps(value).encode())
    except SerializationError:
        pass


def test_a_tombstone_is_none_only_where_allowed() -> None:
    assert Schema(value_type=Item, allow_empty=True).value_decoder()(None) is None
    with pytest.raises(SerializationError, match="received None"):
        Schema(value_type=Item).value_decoder()(None)


# -- a worker among fuzzed messages ------------------------------------------------------


class Reading(Record, serializer="json", namespace="fuzz.Reading"):
    sensor: str
    value: float


def undecodable(data: bytes) -> bool:
    """By the standard library's JSON parser: not an object with both fields."""
    try:
        parsed = json.loads(data)
    except ValueError:
        return True
    return not (isinstance(parsed, dict) and "sensor" in parsed and "value" in parsed)


goods = st.builds(Reading, sensor=st.text(max_size=5),
                  value=st.floats(allow_nan=False, allow_infinity=False))
bads = st.one_of(st.binary(max_size=60), json_values.map(lambda v: json.dumps(v).encode()),
                 st.fixed_dictionaries({"sensor": st.text(max_size=3)}).map(
                     lambda v: json.dumps(v).encode())).filter(undecodable)
streams = st.lists(st.one_of(goods.map(lambda r: ("good", r)), bads.map(lambda b: ("bad", b))),
                   min_size=1, max_size=12)


async def run_worker(policy: str, stream: list[tuple[str, Any]]) -> list[Reading]:
    app = faust.App(f"fuzz-{uuid.uuid4().hex[:8]}", broker=f"memory://{uuid.uuid4().hex}",
                    decode_error_policy=policy, broker_commit_interval=0.1)
    topic = app.topic("readings", value_type=Reading, partitions=1)
    seen: list[Reading] = []

    @app.agent(topic)
    async def read(readings: faust.Stream[Reading]) -> None:
        async for reading in readings:
            seen.append(reading)

    expected = sum(1 for kind, _ in stream if kind == "good")
    if policy == "stop":
        expected = next((i for i, (kind, _) in enumerate(stream) if kind == "bad"), expected)
    async with app.running():
        await app.producer_ready()
        for kind, item in stream:
            app.producer.send_soon("readings", None, item.dumps() if kind == "good" else item,
                                   partition=0)
        await app.producer.flush()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(seen) < expected and loop.time() < deadline:
            await asyncio.sleep(0.005)
        if policy == "stop" and expected < len(stream):
            await asyncio.wait_for(app._stopped.wait(), 10)  # type: ignore[union-attr]
        else:
            await asyncio.sleep(0.02)  # nothing more arrives
    return seen


@pytest.mark.parametrize("policy", ["skip", "dead_letter", "stop"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams)
def test_good_messages_among_fuzzed_ones_are_processed_as_alone(
    policy: str, stream: list[tuple[str, Any]]
) -> None:
    seen = asyncio.run(run_worker(policy, stream))
    good = [item for kind, item in stream if kind == "good"]
    if policy == "stop":
        first_bad = next((i for i, (kind, _) in enumerate(stream) if kind == "bad"), len(stream))
        good = [item for kind, item in stream[:first_bad]]
    assert seen == good
