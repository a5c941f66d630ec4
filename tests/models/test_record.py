# ruff: noqa: UP006, UP035  (Faust programs annotate with typing.List & co.)
"""Record behaviour as in Faust: construction, comparison, representation, round trips."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Dict, List, Optional, Set, Tuple, Union

import pytest

from fluvial.exceptions import ValidationError
from fluvial.models import (
    DecimalField,
    FieldDescriptor,
    IntegerField,
    Record,
    StringField,
    maybe_model,
)


class Order(Record, serializer="json", namespace="shop.Order"):
    account_id: str
    product_id: str
    amount: int
    price: float


class Point(Record):
    x: int
    y: int = 0


class Customer(Record):
    name: str
    orders: List[Order] = []
    by_id: Dict[str, Order] = {}
    best: Optional[Order] = None
    tags: Set[str] = set()
    pair: Tuple[int, int] = (0, 0)


FAUST_PAYLOAD = (
    b'{"account_id": "a", "product_id": "p", "amount": 3, "price": 9.99, '
    b'"__faust": {"ns": "shop.Order"}}'
)


def test_positional_and_keyword_construction_with_defaults() -> None:
    assert Point(1) == Point(x=1, y=0)
    assert Point(1, 2).y == 2
    assert Point(x=1, y=None).y == 0  # Faust: None means "use the default"


def test_missing_and_unknown_arguments_raise_type_error() -> None:
    with pytest.raises(TypeError, match="missing 1 required"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="Point got unexpected argument: z"):
        Point(1, z=3)  # type: ignore[call-arg]


def test_non_default_after_default_is_rejected() -> None:
    with pytest.raises(TypeError, match="Non-default Bad field b cannot follow default field a"):

        class Bad(Record):
            a: int = 1
            b: int


def test_equality_ordering_hash_and_repr() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(1, 3)
    assert sorted([Point(2, 0), Point(1, 5), Point(1, 2)]) == [
        Point(1, 2),
        Point(1, 5),
        Point(2, 0),
    ]
    assert len({Point(1, 2), Point(1, 2)}) == 1
    assert repr(Point(1, 2)) == "<Point: x=1, y=2>"
    assert Point(1) != Order("a", "p", 1, 1.0)


def test_introspection_like_faust() -> None:
    assert Order.__is_model__ is True
    assert list(Order._options.fields) == ["account_id", "product_id", "amount", "price"]
    assert Order._options.fieldpos[2] == "amount"
    assert Point._options.defaults == {"y": 0}
    assert "amount" in Order.__annotations__
    assert Point._options.namespace == f"{__name__}.Point"
    assert isinstance(Order.amount, IntegerField)


def test_field_descriptor_is_a_key_function() -> None:
    order = Order("acc", "p", 1, 2.0)
    descriptor = Order.account_id
    assert isinstance(descriptor, FieldDescriptor)
    assert descriptor.getattr(order) == "acc"
    assert descriptor(order) == "acc"
    assert descriptor.ident == "Order.account_id"
    customer = Customer("c", best=order)
    assert Customer.best.amount.getattr(customer) == 1


def test_asdict_is_shallow_and_representation_is_plain() -> None:
    order = Order("a", "p", 3, 9.99)
    customer = Customer("c", orders=[order], best=order)
    assert customer.asdict()["best"] is order
    rep = customer.to_representation()
    assert rep["best"] == {
        "account_id": "a",
        "product_id": "p",
        "amount": 3,
        "price": 9.99,
        "__faust": {"ns": "shop.Order"},
    }
    assert rep["orders"][0]["amount"] == 3
    assert rep["__faust"] == {"ns": Customer._options.namespace}


def test_include_metadata_false_omits_namespace() -> None:
    class Bare(Record, include_metadata=False):
        a: int

    assert Bare(1).to_representation() == {"a": 1}
    assert Bare(1).dumps() == b'{"a":1}'


def test_dumps_loads_round_trip_nested_containers() -> None:
    order = Order("a", "p", 3, 9.99)
    customer = Customer(
        "c",
        orders=[order, order],
        by_id={"x": order},
        best=order,
        tags={"vip"},
        pair=(1, 2),
    )
    back = Customer.loads(customer.dumps())
    assert back == customer
    assert isinstance(back.orders[1], Order)
    assert isinstance(back.by_id["x"], Order)
    assert back.tags == {"vip"} and back.pair == (1, 2)


def test_faust_written_payload_decodes() -> None:
    order = Order.loads(FAUST_PAYLOAD)
    assert order == Order("a", "p", 3, 9.99)
    assert Order.loads_many([FAUST_PAYLOAD] * 3) == [order] * 3
    assert Order._decoder()(FAUST_PAYLOAD) == order
    # Payloads from another app name modules unknown here: decode as the target.
    other = FAUST_PAYLOAD.replace(b"shop.Order", b"elsewhere.models.Order")
    assert Order.loads(other) == order


def test_missing_field_in_payload_is_an_error() -> None:
    with pytest.raises(ValueError, match="amount"):
        Order.loads(b'{"account_id": "a", "product_id": "p", "price": 1.0}')


class Animal(Record, namespace="zoo.Animal"):
    name: str


class Dog(Animal, namespace="zoo.Dog"):
    good: bool = True


class Keeper(Record):
    pet: Animal


def test_polymorphic_namespace_picks_the_subclass() -> None:
    payload = b'{"name": "rex", "good": false, "__faust": {"ns": "zoo.Dog"}}'
    dog = Animal.loads(payload)
    assert type(dog) is Dog and dog.good is False
    assert type(Animal.from_data({"name": "rex", "__faust": {"ns": "zoo.Dog"}})) is Dog
    keeper = Keeper.loads(Keeper(Dog("rex", False)).dumps())
    assert type(keeper.pet) is Dog
    # An unrelated registered model is not substituted for a concrete class.
    assert type(Dog.loads(b'{"name": "x", "__faust": {"ns": "shop.Order"}}')) is Dog


def test_maybe_model_reconstructs_registered_namespaces_only() -> None:
    assert maybe_model({"name": "a", "__faust": {"ns": "zoo.Animal"}}) == Animal("a")
    unknown = {"a": 1, "__faust": {"ns": "nowhere.X"}}
    assert maybe_model(unknown) is unknown
    assert maybe_model([1, 2]) == [1, 2]


class Shape(Record):
    kind: str


class Circle(Record):
    radius: float


class Drawing(Record):
    item: Union[Shape, Circle]
    maybe: Optional[int] = None


def test_union_and_optional_fields() -> None:
    drawing = Drawing.loads(b'{"item": {"radius": 2.0}}')
    assert drawing.item == Circle(2.0) and drawing.maybe is None
    assert Drawing.loads(Drawing(Shape("sq"), 3).dumps()) == Drawing(Shape("sq"), 3)


def test_isodates_and_decimals() -> None:
    class Trade(Record, isodates=True, decimals=True):
        at: datetime
        price: Decimal

    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    trade = Trade(when, Decimal("1.10"))
    data = trade.dumps()
    assert b'"price":"1.10"' in data
    assert Trade.loads(data) == trade
    assert Trade.loads(b'{"at": "2024-01-02T03:04:05+00:00", "price": 1.1}').price == Decimal("1.1")


def test_without_isodates_strings_stay_strings_like_faust() -> None:
    class Raw(Record):
        at: datetime

    assert Raw.loads(b'{"at": "2024-01-02T03:04:05"}').at == "2024-01-02T03:04:05"


def test_coerce_converts_on_construction() -> None:
    class Reading(Record, coerce=True):
        value: int
        label: str
        ratio: Optional[float] = None
        ids: List[int] = []

    reading = Reading("5", 7, "0.5", ["1", 2])  # type: ignore[arg-type]
    assert reading.value == 5 and reading.label == "7"
    assert reading.ratio == 0.5 and reading.ids == [1, 2]
    assert Reading.loads(b'{"value": "9", "label": "x"}').value == 9


class Account(Record, validation=True):
    name: str = StringField(max_length=5, trim_whitespace=True)
    age: int = IntegerField(min_value=0, max_value=150)
    balance: Decimal = DecimalField(
        max_digits=4, max_decimal_places=2, required=False, default=Decimal("0")
    )


def test_validation_raises_at_construction_and_on_decode() -> None:
    assert Account(" bob ", 3).name == "bob"
    with pytest.raises(ValidationError, match="name must have at most 5 characters"):
        Account("too long", 3)
    with pytest.raises(ValidationError, match="age must be at least 0"):
        Account.loads(b'{"name": "ann", "age": -1}')
    with pytest.raises(ValidationError, match="decimal places"):
        Account("ann", 1, Decimal("1.234"))
    with pytest.raises(ValidationError, match="age is not correct type"):
        Account("ann", "old")  # type: ignore[arg-type]


def test_validate_returns_errors_without_raising() -> None:
    class Loose(Record):
        name: str = StringField(max_length=2)
        age: int = IntegerField(max_value=10)

    loose = Loose("abc", 11)
    errors = loose.validate()
    assert [e.field.field for e in errors] == ["name", "age"]  # type: ignore[attr-defined]
    assert not loose.is_valid() and Loose("ab", 1).is_valid()


def test_forward_reference_to_later_class_resolves_lazily() -> None:
    class Tree(Record):
        leaf: Leaf
        children: List[Tree] = []

    class Leaf(Record):
        v: int

    globals()["Leaf"] = Leaf  # forward references resolve through the module globals
    try:
        tree = Tree.loads(b'{"leaf": {"v": 1}, "children": [{"leaf": {"v": 2}}]}')
        assert tree.leaf == Leaf(1)
        assert tree.children[0].leaf == Leaf(2)
    finally:
        del globals()["Leaf"]


def test_derive_and_from_data_copy() -> None:
    point = Point(1, 2)
    assert point.derive(y=5) == Point(1, 5)
    data = {"x": 1, "y": 2}
    assert Point.from_data(data) == point and data == {"x": 1, "y": 2}
    assert Point.from_data(point) is point


def test_abstract_records_cannot_be_instantiated() -> None:
    class Base(Record, abstract=True):
        id: str

    class Concrete(Base):
        n: int = 0

    assert Concrete("a").id == "a"
    with pytest.raises(TypeError, match="abstract"):
        Base("a")


def test_mutable_defaults_are_not_shared() -> None:
    first, second = Customer("a"), Customer("b")
    first.orders.append(Order("a", "p", 1, 1.0))
    assert second.orders == []
