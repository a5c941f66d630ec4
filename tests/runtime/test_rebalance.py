"""The rebalance steps, driven one by one on a worker that is not running: a revoke
finishes what actors hold, commits it, then gives the partitions up; a loss
commits nothing and owes a re-join; an assignment notes the leadership."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import fluvial as faust
from fluvial.buffers import EventBuffer
from fluvial.exceptions import ConsumerFailed
from fluvial.transport.memory import MemoryTransport
from fluvial.types import TP, Message

from .conftest import eventually


async def worker(unique: Callable[[str], str]) -> tuple[faust.App, EventBuffer, str, Any]:
    """An app whose conductor reads a two-partition topic into one buffer, with a
    consumer of its group assigned both partitions (no fetch loop)."""
    app = faust.App(unique("steps"), broker=f"memory://{unique('broker')}")
    name = unique("in")
    source = app.topic(name, partitions=2, value_serializer="raw")
    buffer = EventBuffer(100, [name])
    app.conductor.subscribe(source, buffer)
    await app.declare_topics([source])
    await app.producer_ready()
    transport = app.transport
    assert isinstance(transport, MemoryTransport)
    consumer = transport.create_consumer(app.conf.id)
    await consumer.start()
    consumer.assign({TP(name, 0): 0, TP(name, 1): 0})
    ctx = app.conductor.ctx
    ctx.consumer, ctx.assignment = consumer, {TP(name, 0), TP(name, 1)}
    return app, buffer, name, transport.broker.group(app.conf.id)


def fetch(app: faust.App, name: str, *positions: tuple[int, int]) -> None:
    app.conductor.dispatch([Message(name, p, o, None, b"%d@%d" % (p, o), 0.0)
                            for p, o in positions])


async def test_revoke_finishes_in_flight_events_commits_them_then_gives_up(
    unique: Callable[[str], str],
) -> None:
    app, buffer, name, group = await worker(unique)
    t0, t1 = TP(name, 0), TP(name, 1)
    fetch(app, name, (0, 0), (0, 1), (1, 0), (1, 1), (1, 2))
    for _ in range(2):
        assert buffer.items.popleft().release()           # 0@0, 0@1 processed
    in_hand = buffer.items.popleft()                      # 1@0: an actor holds it
    assert in_hand.tp == t1
    revoke = asyncio.ensure_future(app.conductor.rebalance.revoked({t1}))
    await asyncio.sleep(0.05)
    assert not revoke.done(), "the revoke waits for the event an actor holds"
    assert list(buffer.items) == [], "queued events of the revoked partition are dropped"
    assert group.committed == {}
    assert in_hand.release()
    await asyncio.wait_for(revoke, 5)
    assert group.committed == {t0: 2, t1: 1}, "what was processed, nothing queued"
    assert app.conductor.assignment() == {t0}
    assert t1 not in app.conductor.ctx.offsets.positions()
    assert app.conductor.ctx.rejoin_reason is None


async def test_a_loss_commits_nothing_and_owes_a_rejoin(unique: Callable[[str], str]) -> None:
    app, buffer, name, group = await worker(unique)
    t0, t1 = TP(name, 0), TP(name, 1)
    fetch(app, name, (0, 0), (1, 0))
    assert buffer.items.popleft().release()
    await app.conductor.rebalance.lost({t0, t1})
    assert group.committed == {}
    assert isinstance(app.conductor.ctx.rejoin_reason, ConsumerFailed)
    assert list(buffer.items) == [] and app.conductor.assignment() == set()
    await app.conductor.checkpoints.checkpoint()
    assert group.committed == {}, "a checkpoint after the loss commits nothing either"


async def test_assignment_of_the_leader_partition_makes_the_worker_leader(
    unique: Callable[[str], str],
) -> None:
    app, _, name, _ = await worker(unique)
    rebalance = app.conductor.rebalance
    leader = rebalance.leader_tp
    app.conductor.ctx.assignment = set()
    await rebalance.assigned({TP(name, 0), leader})
    assert app.is_leader()
    assert app.conductor.assignment() == {TP(name, 0)}, "the leader topic is not an input"
    await rebalance.revoked({TP(name, 0), leader})
    assert not app.is_leader()
    await eventually(lambda: app.conductor.assignment() == set(), message="given up")
