"""Starting and stopping an app's runtime, in order.

Start: broker reachable → producer → agents (their streams subscribe) →
topics declared and checked → tables' changelogs declared → group consumer
→ fetch loop, checkpoints, services, timers. Stop, in reverse: timers and
tasks, fetch loop, agents, a final checkpoint (changelogs, producer flush,
offset commit of processed events only), consumer, producer.

Under exactly-once the worker's transactional producer replaces the app's
producer before anything is sent, and the final checkpoint commits the
transaction.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any

from ..clock import wait_within
from ..exceptions import FluvialError, ProducerFenced
from ..schemas.startup import prepare_schemas
from .conductor import leader_topic_name
from .membership import group_client_id
from .watchdog import watch_processing

if TYPE_CHECKING:
    from ..app import App
    from ..channels import Topic
    from ..types import ConsumerT

__all__ = ["create_group_consumer", "start_app", "stop_app"]

logger = logging.getLogger(__name__)


async def start_app(app: App) -> None:
    if app.started:
        return
    conf = app.conf
    if conf.autodiscover and not app._discovered:
        app.discover()
    app.started = True
    app.flow_control.resume()
    app.sensors.add(app.monitor)
    from ..sensors.snapshot import RecentErrors

    app.recent_errors = RecentErrors()
    logging.getLogger("fluvial").addHandler(app.recent_errors)
    await app.producer_ready()
    if conf.exactly_once:
        from .transactions import Transactions

        # Before the agents start: streams keep the producer they first see.
        transactions = Transactions(app)
        await app.replace_producer(await transactions.start())
        app.conductor.checkpoints.use_transactions(transactions)
    for agent in app.agents.values():
        await agent.start()
    # Agent bodies run up to their first wait, creating group_by/through topics.
    for _ in range(5):
        await asyncio.sleep(0)
    await app.declare_topics(app.conductor.topics)
    await app.declare_topics(t.changelog_topic for t in app.tables)
    # Schema registry codecs: an incompatible schema stops the worker here.
    await prepare_schemas(app, [*app.topics, *(t.changelog_topic for t in app.tables)])
    if conf.decode_error_policy == "dead_letter" or any(
        getattr(t, "on_decode_error", None) == "dead_letter" for t in app.conductor.topics
    ) or any(agent.errors.policy == "dead_letter" for agent in app.agents.values()):
        await app.declare_topics([app.topic(conf.dead_letter_topic_name, internal=True)])
    leads = any(entry.on_leader for entry in app.scheduler.entries)
    if app.conductor.topic_names or leads:
        await app.declare_topics([leader_topic(app)])
    await _check_copartitioned(app)
    services = []
    for cls in app.services:
        service = _instantiate(cls, app)
        start = getattr(service, "start", None)
        if start is not None:
            await _maybe_await(start())
        run = getattr(service, "run", None)
        if run is not None:
            app.add_background_task(run(), f"service:{cls.__name__}")
        services.append(service)
    app.running_services = services
    if app.conductor.topic_names or leads:
        await app.tables.start_standby()
        consumer = await create_group_consumer(app)
        app.add_background_task(app.conductor.run(consumer), "conductor")
        checkpoints = app.conductor.checkpoints
        app.add_background_task(checkpoints.run(conf.commit_interval_s), "checkpoints")
        app.add_background_task(app.membership.run(), "membership")
        app.add_background_task(watch_processing(app), "processing-watchdog")
    await app.tables.start_global_tailing()
    app.add_background_task(app.sensors.run_sampling(), "sensors")
    app.scheduler.start()


#: How often a worker subscribed by pattern looks for new matching topics.
PATTERN_REFRESH_MS = 5000


def leader_topic(app: App) -> Topic[Any]:
    """Faust's leader topic: one partition, so the group gives it to one worker."""
    from ..channels import Topic

    return Topic(app, topics=[leader_topic_name(app)], partitions=1, internal=True)


async def create_group_consumer(app: App) -> ConsumerT:
    """Start the consumer of the app's group (``app.group_consumer``)."""
    conf = app.conf
    extra: dict[str, Any] = {
        "session.timeout.ms": int(conf.broker_session_timeout * 1000),
        "heartbeat.interval.ms": int(conf.broker_heartbeat_interval * 1000),
        "max.poll.interval.ms": int(conf.broker_max_poll_interval * 1000),
    }
    if any(t.pattern is not None for t in app.conductor.topics):
        # Topics created later that match a pattern are found at a metadata refresh.
        extra["topic.metadata.refresh.interval.ms"] = PATTERN_REFRESH_MS
    if conf.consumer_group_instance_id:
        extra["group.instance.id"] = conf.consumer_group_instance_id
    if conf.exactly_once:
        extra["isolation_level"] = "read_committed"
    consumer = app.transport.create_consumer(
        conf.id,
        auto_offset_reset=conf.consumer_auto_offset_reset,
        # Carries the worker's URL: other workers read it from the group.
        client_id=group_client_id(conf),
        **extra,
    )
    await consumer.start()
    app.group_consumer = consumer
    return consumer


async def stop_app(app: App) -> None:
    if not app.started:
        return
    await _bounded(app.on_before_shutdown.send(), "on_before_shutdown receivers", app)
    app.scheduler.stop()
    app.conductor.rebalance.set_leader(False)
    background = list(app._background)
    for task in background:
        task.cancel()
    await _bounded(_cancelled(background), "background tasks", app)
    if app.conductor.checkpoints.transactions is not None:
        # Let the actors finish the events they hold (not the buffered ones), so
        # the final transaction holds whole events.
        await _bounded(app.conductor.settle(), "finishing events in flight", app)
    for agent in app.agents.values():
        await _bounded(agent.stop(), f"agent {agent.name}", app)
    await _bounded(app.tables.stop_global_tailing(), "global table tailing", app)
    # Before the consumer leaves: revoked partitions are then closed, not kept as standbys.
    await _bounded(app.tables.stop_standby(), "standby replicas", app)
    consumer = app.group_consumer
    try:
        if app.fatal_error is None or consumer is not None:
            await _bounded(app.conductor.checkpoints.checkpoint(final=True), "final checkpoint",
                           app)
    except ProducerFenced as exc:
        logger.warning("Final checkpoint fenced, nothing of it is committed (another worker "
                       "took over): %s", exc)
    except FluvialError as exc:
        logger.error("Final checkpoint failed: %s", exc)
        app.on_fatal(exc)
    for service in reversed(app.running_services):
        stop = getattr(service, "stop", None)
        if stop is not None:
            await _bounded(_maybe_await(stop()), f"service {type(service).__name__}", app)
    if consumer is not None:
        await _bounded(consumer.stop(), "group consumer", app)
        app.group_consumer = None
    app.started = False
    if app.recent_errors is not None:
        logging.getLogger("fluvial").removeHandler(app.recent_errors)
    app.conductor.checkpoints.transactions = None
    await _bounded(app.close(), "producer and transport", app)


async def _cancelled(tasks: list[asyncio.Task[Any]]) -> None:
    """Wait for cancelled tasks to end; say which of them failed on the way out."""
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, Exception):
            logger.error("Stopping the worker: task %s failed as it was cancelled: %r",
                         task.get_name(), result, exc_info=result)


#: How long one step of stopping may take before the worker gives up on it (loudly).
STOP_STEP_TIMEOUT_S = 30.0


async def _bounded(step: Any, what: str, app: App) -> None:
    """Run one shutdown step; a step that hangs is reported and left, never waited for.

    Left, not awaited after cancelling it: a step that does not end on its
    cancellation (e.g. one suppressing it while it awaits) must not hang the
    stop (``asyncio.wait_for`` would wait for it).
    """
    try:
        await wait_within(step, STOP_STEP_TIMEOUT_S, abandon=True)
    except TimeoutError:
        error = FluvialError(f"Stopping the worker: {what} did not finish within "
                             f"{STOP_STEP_TIMEOUT_S:.0f} s")
        logger.error("%s", error)
        app.on_fatal(error)


async def _check_copartitioned(app: App) -> None:
    """Repartition topics and changelogs must have the partition count the app expects."""
    from ..exceptions import PartitionCountMismatch

    await _check_joins(app)
    expected: dict[str, int] = {}
    for topic in app.conductor.topics:
        if topic.internal:
            for name in topic.topics:
                expected[name] = topic.partitions or app.conf.topic_partitions
    for table in app.tables:
        expected[table.changelog_topic_name] = table.partitions
    if not expected:
        return
    actual = await app.transport.partition_counts(expected)
    for name, want in expected.items():
        have = actual.get(name)
        if have is not None and have != want:
            raise PartitionCountMismatch(
                f"Topic {name!r} has {have} partitions but the app needs {want}: tables and "
                "repartitioned streams must be co-partitioned. Delete the topic with Kafka's "
                "tools (kafka-topics.sh --delete) or set partitions= (or topic_partitions) "
                f"to {have}."
            )


async def _check_joins(app: App) -> None:
    """Joined streams and tables must have equal partition counts."""
    from ..channels import Topic
    from ..exceptions import PartitionCountMismatch
    from ..tables import Table

    for group in app._copartitioned:
        names = [n for s in group if isinstance(s, Topic) for n in s.topics]
        actual = await app.transport.partition_counts(names) if names else {}
        counts: dict[str, int | None] = {}
        for source in group:
            if isinstance(source, Table):
                counts[f"table {source.name!r}"] = source.partitions
            elif isinstance(source, Topic):
                for name in source.topics:
                    counts[f"topic {name!r}"] = actual.get(name)
        known = {c for c in counts.values() if c is not None}
        if len(known) > 1:
            detail = ", ".join(f"{what} has {n}" for what, n in counts.items())
            raise PartitionCountMismatch(
                f"Joined streams and tables must be co-partitioned: {detail}. Repartition "
                "the stream with group_by(..., partitions=N) or give the table partitions=N."
            )


def _instantiate(cls: Any, app: App) -> Any:
    """An instance of a service class: given the app if it takes a positional argument."""
    if not inspect.isclass(cls):
        return cls
    params = inspect.signature(cls).parameters.values()
    takes_app = any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    return cls(app) if takes_app else cls()  # type: ignore[call-arg]


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
