"""A topic declared twice must be declared the same way."""

from __future__ import annotations

import pytest

import fluvial as faust
from fluvial.exceptions import ImproperlyConfigured


def test_different_partition_counts_are_refused_naming_both() -> None:
    app = faust.App("twice", broker="memory://twice")
    app.topic("orders", partitions=4)
    with pytest.raises(ImproperlyConfigured) as info:
        app.topic("orders", partitions=8)
    message = str(info.value)
    assert "'orders' is declared with partitions=4 at " in message
    assert "and with partitions=8 at " in message
    # Both places are the test's own lines, not fluvial's.
    assert message.count("test_declarations.py:") == 2


def test_different_serializers_are_refused() -> None:
    app = faust.App("serializers", broker="memory://serializers")
    app.topic("events", value_serializer="json")
    with pytest.raises(ImproperlyConfigured, match=r"value_serializer='json' at .* and with "
                                                    r"value_serializer='pickle'"):
        app.topic("events", value_serializer="pickle")
    app.topic("keys", key_serializer="raw")
    with pytest.raises(ImproperlyConfigured, match="key_serializer"):
        app.topic("keys", "other", key_serializer="json")


def test_an_agent_topic_against_a_declared_one() -> None:
    app = faust.App("agent-topic", broker="memory://agent-topic")
    app.topic("numbers", partitions=2)
    with pytest.raises(ImproperlyConfigured, match=r"partitions=2 at .* partitions=3"):

        @app.agent("numbers", partitions=3)
        async def process(stream: faust.Stream[int]) -> None:
            async for _ in stream:
                pass


def test_the_same_declaration_twice_or_unstated_settings_are_fine() -> None:
    app = faust.App("same", broker="memory://same")
    first = app.topic("orders", partitions=4, value_serializer="json")
    again = app.topic("orders", partitions=4, value_serializer="json")
    loose = app.topic("orders")  # states nothing: takes nothing back
    assert first.partitions == again.partitions == 4
    assert loose.partitions is None
