"""The offset tracker: what may be committed is the acknowledged prefix of each partition."""

from __future__ import annotations

from fluvial.runtime.offsets import OffsetTracker
from fluvial.types import TP, Message

T0, T1 = TP("t", 0), TP("t", 1)


def fetched(partition: int, *offsets: int, holds: int = 1) -> list[Message]:
    messages = [Message("t", partition, offset, None, b"", 0.0) for offset in offsets]
    for message in messages:
        message.hold(holds)
    return messages


def test_only_the_acknowledged_prefix_is_committable() -> None:
    tracker = OffsetTracker()
    first, second, third = fetched(0, 0, 1, 2)
    tracker.track("t", [first, second, third])
    assert tracker.committable() == {}
    assert second.release()
    assert tracker.committable() == {}, "offset 0 is not processed yet: nothing past it"
    assert first.release()
    assert tracker.committable() == {T0: 2}
    assert tracker.oldest_unprocessed() == {T0: third}


def test_a_message_is_acknowledged_once_every_stream_released_it() -> None:
    tracker = OffsetTracker()
    (message,) = fetched(1, 7, holds=2)
    tracker.track("t", [message])
    assert not message.release()
    assert (message.acked, message.holders, tracker.unacked_refs()) == (False, 1, 1)
    assert tracker.committable() == {}
    assert message.release()
    assert tracker.committable() == {T1: 8}


def test_never_commit_holds_the_partition_back_for_good() -> None:
    tracker = OffsetTracker()
    bad, after = fetched(0, 0, 1)
    tracker.track("t", [bad, after])
    bad.never_commit()
    bad.release()
    after.release()
    assert not bad.acked and bad.holders == 1
    assert tracker.committable() == {}


def test_processed_offsets_stay_owed_until_committed() -> None:
    """A checkpoint that took the offsets and did not get to commit them (cancelled
    at the stop, failed) loses nothing: the next one commits them."""
    tracker = OffsetTracker()
    messages = fetched(0, 0, 1)
    tracker.track("t", messages)
    for message in messages:
        message.release()
    assert tracker.committable() == {T0: 2}
    assert tracker.committable() == {T0: 2}, "not committed: still owed"
    tracker.committed[T0] = 2
    assert tracker.committable() == {}


def test_forgetting_a_partition_drops_what_it_owed() -> None:
    tracker = OffsetTracker()
    zero, one = fetched(0, 0), fetched(1, 0)
    tracker.track("t", zero + one)
    for message in zero + one:
        message.release()
    tracker.committable()
    tracker.forget({T1})
    assert tracker.committable() == {T0: 1}
    assert T1 not in tracker.positions()


def test_in_flight_counts_messages_streams_still_hold() -> None:
    tracker = OffsetTracker()
    taken, queued = fetched(0, 0, 1)
    tracker.track("t", [taken, queued])
    # ``queued`` was taken back from a buffer (a revoke): it will never be released.
    assert tracker.in_flight({T0}, {id(queued): 1}) == 1
    taken.release()
    assert tracker.in_flight({T0}, {id(queued): 1}) == 0


def test_advance_lets_go_of_processed_messages_and_keeps_their_offsets() -> None:
    """The fetch loop advances every round: a processed message is not held until
    the next checkpoint, yet that checkpoint commits past it."""
    tracker = OffsetTracker()
    messages = fetched(0, 0, 1, 2)
    tracker.track("t", messages)
    messages[0].release()
    messages[1].release()
    tracker.advance()
    assert tracker.pending() == 1, "only the unprocessed message is still held"
    assert tracker.positions() == {T0: 3}
    messages[2].release()
    tracker.advance()
    assert tracker.pending() == 0
    assert tracker.positions() == {T0: 3}, "read up to 2 although nothing is held"
    assert tracker.committable() == {T0: 3}
    tracker.committed.update({T0: 3})
    assert tracker.committable() == {}


def test_acked_prefix_counts_up_to_the_first_unprocessed() -> None:
    messages = fetched(0, 0, 1, 2, 3)
    Message.hold_all(messages, 1)  # a second stream receives them too
    assert [m.holders for m in messages] == [2, 2, 2, 2]
    for message in messages[:3]:
        message.release(2)
    messages[3].release()
    assert Message.acked_prefix(messages) == 3
    messages[1].never_commit()
    assert Message.acked_prefix(messages) == 1
    assert Message.acked_prefix([]) == 0


async def test_a_stream_commits_exactly_what_it_finished() -> None:
    """Through the conductor and a stream over two partitions: what a checkpoint
    would commit is, per partition, the prefix of what the stream moved past —
    never the event in hand, nor anything after it."""
    import fluvial as faust
    from fluvial.buffers import EventBuffer
    from fluvial.streams import Stream

    app = faust.App("exact-prefix", broker="memory://exact-prefix")
    topic = app.topic("t", value_serializer="raw", partitions=2)
    buffer = EventBuffer(100, ["t"])
    app.conductor.subscribe(topic, buffer)
    # Partition 0 at offsets 10.., partition 1 at 20.., interleaved as fetched.
    batch = [Message("t", i % 2, 10 * (1 + i % 2) + i // 2, None, b"%d" % i, 0.0)
             for i in range(8)]
    app.conductor.dispatch(batch)
    tracker = app.conductor.ctx.offsets
    stream: Stream[bytes] = Stream(topic, app=app, buffer=buffer)
    values = stream.__aiter__()
    assert await values.__anext__() == b"0"              # t[0]@10 in hand
    assert tracker.committable() == {}
    for expected in (b"1", b"2", b"3", b"4"):            # up to t[0]@12 in hand
        assert await values.__anext__() == expected
    assert tracker.committable() == {T0: 12, T1: 22}     # 10, 11 and 20, 21 finished
    stream.ack_pending()                                  # the agent crashed on t[0]@12
    assert tracker.committable() == {T0: 13, T1: 22}
    await values.aclose()
