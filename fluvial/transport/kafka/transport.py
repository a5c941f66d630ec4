"""``kafka://`` transport: makes producers and consumers, declares and describes topics."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import (
    ConsumerGroupState,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka import admin as kafka_admin
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from ...exceptions import (
    AuthenticationFailed,
    BrokerUnreachable,
    GroupRebalancing,
    PartitionCountMismatch,
    TransportError,
)
from ...types import TP, GroupMember, TopicSpec
from ._config import bootstrap_servers, client_config, describe_error
from .consumer import KafkaConsumer
from .producer import KafkaProducer
from .transactions import TransactionalKafkaProducer

__all__ = ["KafkaTransport"]

#: How long a topic just created may take to show in every broker's metadata.
LISTED_TIMEOUT_S = 30.0

#: librdkafka 2.x aborts the process (assertion on a freed request in its coordinator
#: lookup) when a group-describe request times out while the group's coordinator is
#: down and the broker then comes back: seen in a broker-kill fault run. A long timeout
#: lets the request wait for the coordinator instead of timing out in such an outage.
DESCRIBE_TIMEOUT_S = 120.0
#: How long reading end offsets may keep failing (a broker restarting) before it is an error.
LIST_OFFSETS_TIMEOUT_S = 60.0

_COORDINATOR_MOVED = frozenset({
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
})


class KafkaTransport:
    """A :class:`~fluvial.types.TransportT` for Apache Kafka.

    ``url`` is ``kafka://host:port``; several servers are separated by ``;`` or
    ``,`` (each may repeat ``kafka://``), the port defaults to 9092. ``config``
    holds extra librdkafka settings with their dotted names (e.g.
    ``**{"security.protocol": "SASL_SSL"}``) given to every client.
    ``consumer_config`` holds librdkafka settings for consumers only.
    ``connect_timeout_s`` bounds the reachability check in :meth:`start` and
    every metadata request.
    """

    in_process = False

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0,
                 consumer_config: dict[str, Any] | None = None, **config: Any) -> None:
        self.url = url
        self.bootstrap_servers = bootstrap_servers(url)
        self.connect_timeout_s = connect_timeout_s
        self.config: dict[str, Any] = dict(config)
        #: Extra librdkafka settings for every consumer only (fetch sizes, CRC checks).
        self.consumer_config: dict[str, Any] = dict(consumer_config or {})
        self._admin: AdminClient | None = None
        self._last_error: KafkaError | None = None

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        """The librdkafka config a client of this transport gets (before its own defaults)."""
        return client_config(self.bootstrap_servers, self.config, overrides)

    # -- lifetime ------------------------------------------------------------------
    async def start(self) -> None:
        """Check the broker is reachable; raise BrokerUnreachable otherwise."""
        try:
            await self._metadata()
        except AuthenticationFailed:
            raise
        except TransportError as exc:
            raise BrokerUnreachable(
                f"No Kafka broker answered at {self.bootstrap_servers} within "
                f"{self.connect_timeout_s:g}s ({exc}). Is Kafka running there? Set the "
                f"address with --broker or FLUVIAL_BROKER (e.g. kafka://localhost:9092)."
            ) from exc

    async def stop(self) -> None:
        self._admin = None

    # -- clients -------------------------------------------------------------------
    def create_producer(self, **config: Any) -> KafkaProducer:
        return KafkaProducer(self.client_config(**config))

    def create_transactional_producer(self, transactional_id: str,
                                      **config: Any) -> TransactionalKafkaProducer:
        return TransactionalKafkaProducer(self.client_config(**config), transactional_id)

    def create_consumer(
        self,
        group_id: str | None,
        *,
        auto_offset_reset: str = "earliest",
        client_id: str = "fluvial",
        isolation_level: str = "read_uncommitted",
        **config: Any,
    ) -> KafkaConsumer:
        """A consumer of ``group_id`` (``None``: manual ``assign()`` only).

        ``config`` may also carry the consumer's named options ``batch_size``,
        ``max_pending_batches``, ``request_timeout_s`` and ``convert``.
        """
        named = {
            k: config.pop(k)
            for k in ("batch_size", "max_pending_batches", "request_timeout_s", "convert")
            if k in config
        }
        cfg = self.client_config(
            **{
                "auto.offset.reset": auto_offset_reset,
                "client.id": client_id,
                "isolation.level": isolation_level,
            }
        )
        cfg.update(self.consumer_config)
        cfg.update(config)
        return KafkaConsumer(cfg, group_id=group_id, **named)

    # -- topics --------------------------------------------------------------------
    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create missing topics; existing ones are checked, not altered."""
        if not specs:
            return
        existing = await self.partition_counts(s.name for s in specs)
        missing = [s for s in specs if existing.get(s.name) is None]
        if missing:
            await self._create(missing, existing)
        mismatches = [
            (s, have)
            for s in specs
            if (have := existing.get(s.name)) is not None and have != s.partitions
        ]
        if mismatches:
            lines = [
                f"topic {s.name!r} has {have} partitions but the app needs {s.partitions}"
                for s, have in mismatches
            ]
            raise PartitionCountMismatch(
                "Existing topics do not match their declaration: "
                + "; ".join(lines)
                + ". Delete and recreate the topics (their data is lost), or declare them with "
                "partitions= equal to the existing count (and the same for co-partitioned topics)."
            )

    async def _create(self, specs: Sequence[TopicSpec], counts: dict[str, int | None]) -> None:
        new = [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=s.replicas,
                config={k: str(v) for k, v in s.config.items()},
            )
            for s in specs
        ]
        futures = self._admin_client().create_topics(
            new, operation_timeout=self.connect_timeout_s, request_timeout=self.connect_timeout_s
        )
        errors: list[str] = []
        raced: list[str] = []
        for spec in specs:
            try:
                await asyncio.wrap_future(futures[spec.name])
                counts[spec.name] = spec.partitions
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    raced.append(spec.name)  # created concurrently: check it like the others
                else:
                    errors.append(f"{spec.name!r}: {describe_error(exc)}")
        if errors:
            raise TransportError("Could not create topics: " + "; ".join(errors))
        if raced:
            counts.update(await self.partition_counts(raced))
        await self._until_listed({s.name: s.partitions for s in specs if s.name not in raced})

    async def _until_listed(self, created: dict[str, int]) -> None:
        """Wait until the cluster's metadata lists the ``created`` topics whole.

        The controller acknowledges a creation before every broker's metadata
        has the topic: a metadata request answered by another broker meanwhile
        (the next ``partition_counts``, a producer's first send) would say it
        does not exist.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LISTED_TIMEOUT_S
        while created:
            topics = (await self._metadata()).topics
            for name in [n for n, want in created.items()
                         if (t := topics.get(n)) is not None and t.error is None
                         and len(t.partitions) == want]:
                del created[name]
            if not created:
                return
            if loop.time() >= deadline:
                raise TransportError(
                    f"Created topics {sorted(created)}, but the brokers' metadata still does "
                    f"not list them whole after {LISTED_TIMEOUT_S:.0f} s: is every broker "
                    "of the cluster reachable?")
            await asyncio.sleep(0.05)

    def declare_now(self, specs: Sequence[TopicSpec], *, check: bool = True) -> bool:
        """Never at once: creating a topic is a round trip to the controller."""
        return False

    async def partition_counts(self, topics: Iterable[str]) -> dict[str, int | None]:
        """Partition count per topic, ``None`` where the topic does not exist."""
        wanted = list(topics)
        metadata = await self._metadata()
        counts: dict[str, int | None] = {}
        for name in wanted:
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None:
                counts[name] = None
            else:
                counts[name] = len(topic.partitions)
        return counts

    async def describe_group(self, group_id: str) -> list[GroupMember]:
        """The group's members and assignments (``AdminClient.describe_consumer_groups``).

        Raises :class:`~fluvial.exceptions.GroupRebalancing` while the group is
        between generations (its members then show the old assignment).
        """
        futures = self._admin_client().describe_consumer_groups(
            [group_id], request_timeout=DESCRIBE_TIMEOUT_S)
        try:
            description = await asyncio.wrap_future(futures[group_id])
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.GROUP_ID_NOT_FOUND:
                return []
            if isinstance(err, KafkaError) and err.code() in _COORDINATOR_MOVED:
                # librdkafka's admin client keeps asking the broker it found first
                # after the group's coordinator moved (a broker went away and came
                # back): a fresh client looks the coordinator up again.
                self._admin = None
            raise TransportError(
                f"Could not describe consumer group {group_id!r}: {describe_error(exc)}"
            ) from exc
        if description.state in (ConsumerGroupState.DEAD, ConsumerGroupState.EMPTY):
            return []  # no such group (DEAD), or no member
        if description.state != ConsumerGroupState.STABLE:
            raise GroupRebalancing(f"Consumer group {group_id!r} is rebalancing "
                                   f"({description.state.name})")
        members = []
        for m in description.members:
            parts = m.assignment.topic_partitions if m.assignment is not None else []
            members.append(GroupMember(m.member_id, m.client_id, m.host,
                                       frozenset(TP(tp.topic, tp.partition) for tp in parts)))
        return sorted(members)

    async def open_transactions(self, tps: Iterable[TP]) -> set[TP]:
        """Partitions whose last stable offset is below their high-water mark.

        Asks the partition leaders for both (``ListOffsets`` at each isolation
        level); a partition with an open transaction shows a committed end
        before its last record. Retries for up to ``LIST_OFFSETS_TIMEOUT_S``.
        """
        wanted = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        if not wanted:
            return set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LIST_OFFSETS_TIMEOUT_S
        while True:
            try:
                stable = await self._latest_offsets(wanted, IsolationLevel.READ_COMMITTED)
                high = await self._latest_offsets(wanted, IsolationLevel.READ_UNCOMMITTED)
                return {tp for tp, end in stable.items() if end < high[tp]}
            except KafkaException as exc:
                if loop.time() >= deadline:
                    raise TransportError(
                        f"Could not read the end offsets of {len(wanted)} partitions: "
                        f"{describe_error(exc)}") from exc
                self._admin = None  # a fresh client finds moved leaders at once
                await asyncio.sleep(0.5)

    async def _latest_offsets(self, parts: list[TopicPartition],
                              isolation: IsolationLevel) -> dict[TP, int]:
        futures = self._admin_client().list_offsets(
            {tp: kafka_admin.OffsetSpec.latest() for tp in parts},  # type: ignore[attr-defined,no-untyped-call]
            isolation_level=isolation,
            request_timeout=10.0)
        return {TP(tp.topic, tp.partition): (await asyncio.wrap_future(future)).offset
                for tp, future in futures.items()}

    # -- admin client ----------------------------------------------------------------
    def _admin_client(self) -> AdminClient:
        if self._admin is None:
            cfg = self.client_config()
            cfg["error_cb"] = self._on_admin_error
            self._admin = AdminClient(cfg)
        return self._admin

    def _on_admin_error(self, err: KafkaError) -> None:
        self._last_error = err

    async def _metadata(self) -> Any:
        """Cluster metadata (all topics: asking for one name could auto-create it)."""
        admin = self._admin_client()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout_s
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            # Ask in short slices: between them, librdkafka's error callback tells
            # an authentication failure apart from an absent broker at once.
            while True:
                slice_s = max(0.1, min(1.0, deadline - loop.time()))
                try:
                    return await loop.run_in_executor(
                        pool, functools.partial(admin.list_topics, timeout=slice_s))
                except KafkaException as exc:
                    admin.poll(0)  # serves queued errors and log lines
                    last = self._last_error
                    if last is not None and last.code() == KafkaError._AUTHENTICATION:
                        raise AuthenticationFailed(
                            f"The Kafka broker at {self.bootstrap_servers} refused the "
                            f"credentials: {last.str()}. Check broker_credentials."
                        ) from exc
                    if loop.time() >= deadline:
                        detail = describe_error(exc)
                        if last is not None:
                            detail += f"; last connection error: {last.str()}"
                        raise TransportError(detail) from exc
                finally:
                    admin.poll(0)
