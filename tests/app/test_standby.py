"""Standby replicas and app.router with two workers (two Apps in one process).

Placement is a pure function, tested on its own; the takeover and routing
tests run on memory:// and on real Kafka.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fluvial as faust
from fluvial.exceptions import RouterError
from fluvial.runtime.membership import GroupView, group_client_id, parse_client_id
from fluvial.tables.standby import standby_placement
from fluvial.transport.partitioner import partition_for_key
from fluvial.types import TP, GroupMember

from .conftest import eventually

# -- placement (pure) ---------------------------------------------------------------------


def test_placement_never_the_owner_and_n_respected() -> None:
    members = ["a", "b", "c", "d"]
    owners = {p: members[p % 4] for p in range(8)}
    for replicas in (1, 2, 3):
        placement = standby_placement(owners, members, replicas)
        for partition, standbys in placement.items():
            assert owners[partition] not in standbys
            assert len(standbys) == replicas
            assert len(set(standbys)) == replicas


def test_placement_is_the_next_members_in_ring_order() -> None:
    placement = standby_placement({0: "b", 1: "d"}, ["d", "a", "c", "b"], 2)
    assert placement == {0: ("c", "d"), 1: ("a", "b")}


def test_placement_fewer_standbys_when_the_group_is_small() -> None:
    assert standby_placement({0: "a", 1: "a"}, ["a"], 2) == {0: (), 1: ()}
    assert standby_placement({0: "a", 1: "b"}, ["b", "a"], 3) == {0: ("b",), 1: ("a",)}


def test_placement_is_deterministic() -> None:
    owners = {p: f"w{p % 3}" for p in range(12)}
    first = standby_placement(owners, ["w0", "w1", "w2"], 1)
    assert first == standby_placement(dict(reversed(list(owners.items()))),
                                      ["w2", "w0", "w1", "w0"], 1)


def test_placement_spreads_evenly() -> None:
    members = [f"http://worker-{i}:6066" for i in range(4)]
    owners = {p: members[p // 4] for p in range(16)}  # range assignment: 4 each
    for replicas in (1, 2, 3):
        load = Counter(m for standbys in standby_placement(owners, members, replicas).values()
                       for m in standbys)
        assert set(load.values()) == {4 * replicas}


def test_group_view_parses_worker_urls() -> None:
    conf = faust.App("x", web_host="w1.example", web_port=7000).conf
    assert conf.canonical_url == "http://w1.example:7000"
    assert parse_client_id(group_client_id(conf)) == "http://w1.example:7000"
    assert parse_client_id("rdkafka") is None
    view = GroupView([
        GroupMember("m2", "fluvial|http://b:1", "/h", frozenset({TP("t", 1)})),
        GroupMember("m1", "fluvial|http://a:1", "/h", frozenset({TP("t", 0)})),
    ])
    assert view.keys == ["http://a:1", "http://b:1"]
    assert view.partition_owners() == {0: "http://a:1", 1: "http://b:1"}
    assert view.partition_count("t") == 2


def test_canonical_url_follows_web_settings() -> None:
    conf = faust.App("x").conf
    assert conf.canonical_url == "http://localhost:6066"
    assert conf.replace(web_port=7001).canonical_url == "http://localhost:7001"
    explicit = faust.App("x", canonical_url="http://lb:80").conf
    assert explicit.replace(web_port=7001).canonical_url == "http://lb:80"


# -- two workers ----------------------------------------------------------------------------


def worker(name: str, broker_url: str, topic_name: str, port: int, store: str = "memory://",
           datadir: Path | None = None) -> tuple[faust.App, Any, Any, list[str]]:
    extra = {"datadir": str(datadir / str(port))} if datadir is not None else {}
    app = faust.App(name, broker=broker_url, topic_partitions=2, broker_commit_interval=0.2,
                    web_port=port, store=store, **extra)
    # Keys as the app's key_serializer (raw) encodes them: the router hashes them so.
    topic = app.topic(topic_name, key_type=str, value_type=int, partitions=2)
    totals = app.Table("totals", default=int, partitions=2, key_type=str)
    handled: list[str] = []

    @app.agent(topic)
    async def add(stream: faust.Stream[int]) -> None:
        async for key, value in stream.items():
            totals[key] += value
            handled.append(key)

    return app, topic, totals, handled


def owned(app: faust.App) -> set[int]:
    return {tp.partition for tp in app.conductor.assignment()}


def keys_in(partition: int, count: int, prefix: str = "k") -> list[str]:
    """Keys (encoded as the topic sends them) that land in ``partition`` of 2."""
    keys: list[str] = []
    i = 0
    while len(keys) < count:
        key = f"{prefix}{i}"
        if partition_for_key(key.encode(), 2) == partition:
            keys.append(key)
        i += 1
    return keys


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
async def test_standby_holds_the_values_and_takeover_replays_only_the_rest(
        broker_url: str, unique: Callable[[str], str], store: str, tmp_path: Path) -> None:
    name, topic_name = unique("standby"), unique("amounts")
    app_a, topic, table_a, handled_a = worker(name, broker_url, topic_name, 7101, store,
                                              tmp_path)
    app_b, _, table_b, handled_b = worker(name, broker_url, topic_name, 7102, store, tmp_path)
    async with app_b.running():
        running_a = app_a.running()
        await running_a.__aenter__()
        try:
            await eventually(lambda: len(owned(app_a)) == 1 and len(owned(app_b)) == 1,
                             message="the two workers share the partitions")
            (pa,) = owned(app_a)
            (pb,) = owned(app_b)
            first = {k: 1 for p in (0, 1) for k in keys_in(p, 20)}
            for key in first:
                await topic.send(key=key, value=1)
            await eventually(lambda: len(handled_a) + len(handled_b) == 40,
                             message="all handled")
            assert handled_a and handled_b
            in_pa = {k: v for k, v in first.items() if k in keys_in(pa, 20)}

            # Each worker is the other's standby and holds its values before any takeover.
            def standby_of(table: Any, partition: int) -> dict[str, int]:
                store = table.standby_data(partition)
                return {} if store is None else dict(store.items())

            await eventually(lambda: standby_of(table_b, pa) == in_pa,
                             message="B holds A's partition as a standby")
            await eventually(lambda: standby_of(table_a, pb) == {
                k: v for k, v in first.items() if k not in in_pa},
                message="A holds B's partition as a standby")
            assert set(table_b.keys()) == set(first) - set(in_pa)  # reads see only active
            metadata = app_b.router.table_metadata("totals")
            assert metadata == {app_a.conf.canonical_url: {"active": [pa], "standby": [pb]},
                                app_b.conf.canonical_url: {"active": [pb], "standby": [pa]}}

            # B stops tailing; A writes five more keys, then leaves.
            standby = app_b.tables.standby
            assert standby is not None
            standby.paused = True
            tailed = table_b.standby_data(pa).changelog_offset
            later = keys_in(pa, 5, prefix="late")
            for key in later:
                await topic.send(key=key, value=2)
            await eventually(lambda: all(k in handled_a for k in later),
                             message="A handled the later events")
        finally:
            await running_a.__aexit__(None, None, None)
        expected = {**first, **{k: 2 for k in later}}
        await eventually(lambda: dict(table_b.items()) == expected,
                         message="B took over with every value")
        # Recovery replayed only what B's standby had not tailed: the five later keys
        # (changelog records come in offset order: anything older would be counted first).
        assert tailed is not None
        assert app_b.tables.last_restored == 5
        await topic.send(key=later[0], value=10)
        await eventually(lambda: table_b[later[0]] == 12, message="B processes A's partition")


async def test_router_routes_each_key_to_the_worker_that_processes_it(
        broker_url: str, unique: Callable[[str], str]) -> None:
    name, topic_name = unique("router"), unique("amounts")
    app_a, topic, _, handled_a = worker(name, broker_url, topic_name, 7201)
    app_b, _, _, handled_b = worker(name, broker_url, topic_name, 7202)
    url_a, url_b = app_a.conf.canonical_url, app_b.conf.canonical_url
    keys = [f"user-{i}" for i in range(30)]
    async with app_a.running():
        running_b = app_b.running()
        await running_b.__aenter__()
        try:
            await eventually(lambda: len(owned(app_a)) == 1 and len(owned(app_b)) == 1,
                             message="the two workers share the partitions")
            for key in keys:
                await topic.send(key=key, value=1)
            await eventually(lambda: len(handled_a) + len(handled_b) == len(keys),
                             message="all handled")
            assert handled_a and handled_b
            await eventually(lambda: len(app_a.membership.view.workers) == 2
                             and len(app_b.membership.view.workers) == 2
                             and app_a.membership.consistent(app_a.membership.view)
                             and app_b.membership.consistent(app_b.membership.view),
                             message="both workers see the group")
            for app in (app_a, app_b):
                for key in keys:
                    where = url_a if key in handled_a else url_b
                    assert app.router.key_store("totals", key) == where, key
                    assert app.router.external_topic_key_store(topic, key) == where, key
            assert set(app_a.router.tables_metadata()) == {url_a, url_b}
        finally:
            await running_b.__aexit__(None, None, None)
        # B left: A owns everything, and its view says so.
        await eventually(lambda: owned(app_a) == {0, 1}
                         and [w.url for w in app_a.membership.view.workers] == [url_a],
                         message="A alone in the group")
        for key in keys:
            assert app_a.router.key_store("totals", key) == url_a
            assert app_a.router.external_topic_key_store(topic, key) == url_a
        # The metadata follows once the view of the new generation is in.
        await eventually(lambda: app_a.router.table_metadata("totals") == {
            url_a: {"active": [0, 1], "standby": []}}, message="metadata of the survivor")


async def test_router_without_a_known_owner_says_so() -> None:
    app = faust.App("lonely", broker="memory://router-lonely")
    app.Table("totals", default=int, partitions=2)
    with pytest.raises(RouterError):
        app.router.key_store("totals", "alice")


async def test_more_workers_than_partitions_the_extra_one_idles(
        broker_url: str, unique: Callable[[str], str]) -> None:
    """Three workers, two partitions: one gets nothing, nothing crashes, all is processed;
    when a busy worker leaves, the idle one takes its partition."""
    name, topic_name = unique("extra"), unique("amounts")
    apps = [worker(name, broker_url, topic_name, 7301 + i) for i in range(3)]
    topic = apps[0][1]
    runs: list[Any] = [app.running() for app, _, _, _ in apps]
    for run in runs:
        await run.__aenter__()
    try:
        await eventually(lambda: sorted(len(owned(a)) for a, _, _, _ in apps) == [0, 1, 1],
                         message="two workers own a partition each, the third idles")
        idle = next(i for i, (a, _, _, _) in enumerate(apps) if not owned(a))
        keys = [f"user-{i}" for i in range(40)]
        for key in keys:
            await topic.send(key=key, value=1)
        await eventually(lambda: sum(len(h) for _, _, _, h in apps) == 40,
                         message="every event handled once")
        assert apps[idle][3] == []
        assert all(app.conductor.error is None for app, _, _, _ in apps)
        busy = next(i for i in range(3) if i != idle)
        await runs[busy].__aexit__(None, None, None)
        runs[busy] = None
        await eventually(lambda: len(owned(apps[idle][0])) == 1,
                         message="the idle worker takes over the partition that was left")
        for key in keys:
            await topic.send(key=key, value=1)
        survivors = [i for i in range(3) if i != busy]
        await eventually(lambda: sum(len(apps[i][3]) for i in survivors) >= 40 + 40 - len(
            apps[busy][3]), message="the survivors handle the new events")
        totals = {}
        for i in survivors:
            totals.update(dict(apps[i][2].items()))
        assert totals == {key: 2 for key in keys}
    finally:
        for run in runs:
            if run is not None:
                await run.__aexit__(None, None, None)


def test_a_canonical_url_clash_is_reported_only_when_it_outlasts_a_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A killed worker's membership lingers beside its restarted self (same URL) until
    its session times out: not worth a warning. A clash that lasts longer is a
    misconfiguration, and is reported once."""
    import logging
    import time

    app = faust.App("clash", broker="memory://", broker_session_timeout=0.3,
                    broker_heartbeat_interval=0.1)
    url = app.conf.canonical_url
    view = GroupView([
        GroupMember("m1", f"fluvial|{url}", "/h", frozenset({TP("t", 0)})),
        GroupMember("m2", f"fluvial|{url}", "/h", frozenset({TP("t", 0)})),
    ])
    with caplog.at_level(logging.WARNING, logger="fluvial.runtime.membership"):
        assert not app.membership.consistent(view)
        assert not app.membership.consistent(view)
        assert "advertise canonical_url" not in caplog.text
        time.sleep(0.35)
        assert not app.membership.consistent(view)
        assert not app.membership.consistent(view)
    assert caplog.text.count("advertise canonical_url") == 1
