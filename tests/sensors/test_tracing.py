"""OpenTelemetry: a span per event, one trace across group_by, agent sends and ask."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

import fluvial as faust
from fluvial.sensors.tracing import TracingSensor

from .conftest import eventually


class Order(faust.Record, serializer="json"):
    account: str
    amount: int


def spans_named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_one_trace_follows_an_event_through_group_by_and_send(
    broker_url: str, unique: Callable[[str], str]
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    app = faust.App(unique("traced"), broker=broker_url, topic_partitions=2)
    app.sensors.add(TracingSensor(tracer_provider=provider))
    orders = app.topic(unique("orders"), value_type=Order, partitions=2)
    totals = app.topic(unique("totals"), value_type=int, partitions=2)
    by_account = app.Table(unique("by-account"), default=int, partitions=2)
    seen: list[int] = []

    @app.agent(orders, name="accounts")
    async def accounts(stream: faust.Stream[Order]) -> None:
        async for order in stream.group_by(Order.account, name="account"):
            by_account[order.account] += order.amount
            await totals.send(key=order.account.encode(), value=by_account[order.account])

    @app.agent(totals, name="report")
    async def report(stream: faust.Stream[int]) -> None:
        async for total in stream:
            seen.append(total)

    async with app.running():
        with tracer.start_as_current_span("client") as client:
            await orders.send(key=b"o1", value=Order(account="a", amount=5))
        await eventually(lambda: seen == [5], message="the total reported")
        await eventually(lambda: len(spans_named(exporter.get_finished_spans(),
                                                 "process report")) == 1,
                         message="the report span ended")
    spans = exporter.get_finished_spans()
    trace_id = client.get_span_context().trace_id
    forward = spans_named(spans, "process accounts")
    report_span = spans_named(spans, "process report")[0]
    # The group_by forwarder's span and the agent's span (after the repartition).
    assert len(forward) == 2
    source, repartitioned = sorted(forward, key=lambda s: s.start_time or 0)
    assert {s.context.trace_id for s in (source, repartitioned, report_span)} == {trace_id}
    assert source.parent is not None and source.parent.span_id == client.get_span_context().span_id
    assert repartitioned.parent is not None
    assert repartitioned.parent.span_id == source.context.span_id
    assert report_span.parent is not None
    assert report_span.parent.span_id == repartitioned.context.span_id
    assert source.attributes is not None
    assert source.attributes["messaging.destination.name"] == orders.get_topic_name()
    assert repartitioned.attributes is not None
    assert str(repartitioned.attributes["messaging.destination.name"]).endswith("-repartition")


async def test_ask_carries_the_callers_trace(unique: Callable[[str], str]) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    app = faust.App(unique("asked"), broker=f"memory://{unique('b')}", topic_partitions=1)
    app.sensors.add(TracingSensor(tracer_provider=provider))

    @app.agent(app.topic(unique("questions"), value_type=int, partitions=1), name="double")
    async def double(stream: faust.Stream[int]) -> Any:
        async for n in stream:
            yield n * 2

    async with app.running():
        with tracer.start_as_current_span("caller") as caller:
            assert await double.ask(21) == 42
        await eventually(lambda: spans_named(exporter.get_finished_spans(), "process double"),
                         message="the agent's span")
    span = spans_named(exporter.get_finished_spans(), "process double")[0]
    assert span.context.trace_id == caller.get_span_context().trace_id
    assert span.parent is not None and span.parent.span_id == caller.get_span_context().span_id
