"""Commits of the Kafka consumer: asynchronous on the consumer thread, so that a
commit's round trip holds up no fetched message, yet each caller gets its own
commit's result, under back-pressure and across rebalances too."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from fluvial.exceptions import CommitError, GroupRebalancing
from fluvial.transport.kafka import KafkaTransport
from fluvial.types import TP

from .conftest import Kit, drain, poll_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


@pytest_asyncio.fixture(loop_scope="function")
async def kit(kafka_url: str) -> AsyncIterator[Kit]:
    transport = KafkaTransport(kafka_url)
    await transport.start()
    kit = Kit(transport)
    try:
        yield kit
    finally:
        await kit.close()
        await transport.stop()


async def _ignore(_: set[TP]) -> None:
    return None


async def test_commits_out_together_each_get_their_own_result(kit: Kit) -> None:
    (topic,) = await kit.topics(1)
    tp = TP(topic, 0)
    await kit.fill(topic, 10)
    consumer = await kit.consumer(kit.name("group"))
    consumer.subscribe([topic], on_assign=_ignore, on_revoke=_ignore)
    await drain(consumer, 10)

    # The middle commit names a topic that does not exist: the broker refuses
    # that one only. Were results handed to the wrong callers, another would fail.
    missing = TP(kit.name("missing"), 0)
    outcomes = await asyncio.gather(
        consumer.commit({tp: 3}), consumer.commit({missing: 1}), consumer.commit({tp: 7}),
        return_exceptions=True)

    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], CommitError)
    assert await consumer.committed([tp]) == {tp: 7}


async def test_a_commit_completes_while_every_hand_off_slot_is_taken(kit: Kit) -> None:
    """Nobody reads: the thread has handed over all it may, and it is given a
    commit's result only inside a consume(). The commit still completes, and at
    most a few single messages are handed over meanwhile."""
    (topic,) = await kit.topics(1)
    tp = TP(topic, 0)
    await kit.fill(topic, 5000)
    consumer = await kit.consumer(kit.name("group"), batch_size=100, max_pending_batches=1)
    consumer.subscribe([topic], on_assign=_ignore, on_revoke=_ignore)
    first = await drain(consumer, 1)
    await asyncio.sleep(0.5)  # the thread hands over its one batch, then waits

    for offset in range(1, 6):
        await asyncio.wait_for(consumer.commit({tp: offset}), 10)

    assert await consumer.committed([tp]) == {tp: 5}
    rest = await drain(consumer, 4999 - len(first) + 1)
    assert [m.offset for m in first + rest] == list(range(5000))


async def test_commits_out_when_a_rebalance_begins_do_not_hold_it_up(kit: Kit) -> None:
    """A revoke callback may wait for a commit made before it (a checkpoint holds
    the lock the revoke's checkpoint takes). That commit's result would only come
    after the callback: it gets GroupRebalancing instead, and commits made inside
    the callback go through."""
    (topic,) = await kit.topics(2)
    group = kit.name("group")
    producer = await kit.producer()
    for p in range(2):
        producer.send_soon(topic, None, b"x", partition=p)
    await producer.flush()
    first = await kit.consumer(group)
    out: set[asyncio.Task[None]] = set()
    outcomes: list[BaseException | None] = []
    revoked_commit: list[dict[TP, int | None]] = []
    revoking = asyncio.Event()

    def record(task: asyncio.Task[None]) -> None:
        out.discard(task)
        if not task.cancelled():
            outcomes.append(task.exception())

    async def on_revoke(tps: set[TP]) -> None:
        if tps and not revoking.is_set():
            revoking.set()
            # What was out when the callback began: it must not wait for them.
            async with asyncio.timeout(10):
                await asyncio.gather(*list(out), return_exceptions=True)
            await first.commit(dict.fromkeys(tps, 1_000_000))
            revoked_commit.append(await first.committed(tps))

    first.subscribe([topic], on_assign=_ignore, on_revoke=on_revoke)
    await poll_until([first], lambda: len(first.assignment()) == 2)

    async def commit_continuously() -> None:
        offset = 0
        while not revoking.is_set():
            offset += 1  # each its own offsets, as a worker's checkpoints commit
            task = asyncio.ensure_future(first.commit({TP(topic, 0): offset}))
            out.add(task)
            task.add_done_callback(record)
            await asyncio.sleep(0.005)

    committing = asyncio.ensure_future(commit_continuously())
    try:
        second = await kit.consumer(group)
        second.subscribe([topic], on_assign=_ignore, on_revoke=_ignore)
        await poll_until([first, second],
                         lambda: len(first.assignment()) == 1 and len(second.assignment()) == 1)
    finally:
        committing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await committing

    assert revoked_commit and all(v == 1_000_000 for v in revoked_commit[0].values())
    assert outcomes and all(o is None or isinstance(o, GroupRebalancing) for o in outcomes)
