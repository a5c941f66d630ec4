"""Table keys come back from the changelog as they were written, or are refused at once."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

import pytest

import fluvial as faust
from fluvial.exceptions import TableError
from fluvial.types import Message

from .conftest import eventually


def counting_app(name: str, broker_url: str, topic_name: str
                 ) -> tuple[faust.App, faust.Topic[Any], Any, list[Any]]:
    app = faust.App(name, broker=broker_url, topic_partitions=1, broker_commit_interval=0.2,
                    table_standby_replicas=0)
    topic = app.topic(topic_name, value_type=str, partitions=1)
    counts = app.Table("counts", default=int)
    seen: list[Any] = []

    @app.agent(topic)
    async def count(accounts: faust.Stream[str]) -> None:
        async for account in accounts:
            key: Any = (account, 1) if not account.startswith("raw:") else account.encode()
            counts[key] += 1
            seen.append(key)

    return app, topic, counts, seen


async def test_a_tuple_key_restores_as_a_tuple(broker_url: str, unique: Callable[[str], str]
                                               ) -> None:
    name, topic_name = unique("tuple-keys"), unique("accounts")
    app, topic, counts, seen = counting_app(name, broker_url, topic_name)
    async with app.running():
        for account in ("acct", "acct", "other"):
            await topic.send(value=account, partition=0)
        await eventually(lambda: len(seen) == 3)
        await app.conductor.checkpoints.checkpoint()
    # A new worker of the same app restores the table from its changelog.
    again, topic, counts, seen = counting_app(name, broker_url, topic_name)
    async with again.running():
        await topic.send(value="acct", partition=0)
        await eventually(lambda: len(seen) == 1, message="the restarted worker's event")
        assert again.fatal_error is None
        assert counts[("acct", 1)] == 3
        assert counts[("other", 1)] == 1
        assert all(type(key) is tuple for key in counts)


async def test_a_bytes_key_under_json_is_refused_at_its_first_write(
    broker_url: str, unique: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    app, topic, counts, _seen = counting_app(unique("bytes-keys"), broker_url, unique("accounts"))
    with caplog.at_level(logging.ERROR):
        async with app.running():
            await topic.send(value="raw:acct", partition=0)
            await eventually(lambda: app.agents[next(iter(app.agents))].crashes == 1)
            assert len(counts) == 0
    [crash] = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert crash.exc_info is not None
    error = str(crash.exc_info[1])
    assert "Table counts: the key b'raw:acct' (bytes)" in error
    assert "key_type=bytes" in error


def test_keys_json_does_not_give_back_are_refused_with_the_fix() -> None:
    app = faust.App("keys", broker="memory://keys", topic_partitions=1)
    table = app.Table("by-day", default=int, use_partitioner=True)
    with pytest.raises(TableError, match=r"would come back as '2024-05-01' \(str\)"):
        table._check_key(datetime.date(2024, 5, 1))
    for good in ("a", 1, 2.5, True, ("a", (1, "b"))):
        table._check_key(good)
    typed = app.Table("by-date", default=int, key_type=datetime.date)
    typed._check_key(datetime.date(2024, 5, 1))
    raw = app.Table("by-bytes", default=int, key_type=bytes)
    raw._check_key(b"\x00\xff")


def test_a_changelog_that_cannot_be_restored_names_table_partition_and_offset() -> None:
    app = faust.App("restore", broker="memory://restore", topic_partitions=2)
    table = app.Table("totals", default=int)
    records = [Message(table.changelog_topic_name, 1, 0, b'"a"', b"1", 0.0),
               Message(table.changelog_topic_name, 1, 1, b'{"not": "hashable"}', b"2", 0.0)]
    with pytest.raises(TableError, match=r"Table totals: cannot restore partition 1 from "
                                         r"restore-totals-changelog: the record at offset 1"):
        table.apply_changelog(1, records)
