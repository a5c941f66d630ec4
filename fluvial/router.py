"""``app.router``: which worker holds a key (Faust's Router API).

A key's partition is computed as the producer does: murmur2 of the key
encoded as a message key of the app's topics (the ``key_serializer``
setting, or the key type's own), which is where ``group_by`` and
``topic.send(key=...)`` put it and so where a co-partitioned table holds it.
A table with ``use_partitioner=True`` places its writes by its changelog key
instead, and is routed that way. The worker is the one assigned that
partition in the latest membership view (:mod:`fluvial.runtime.membership`,
refreshed after every rebalance), and its URL is the ``canonical_url`` it
advertises. For partitions this worker holds the answer comes from its own
assignment, so it is never stale; a view naming this worker for a partition
it does not hold (it was just revoked) means the owner is not known yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .exceptions import RouterError, SameNode
from .serializers import Schema
from .tables.standby import standby_placement
from .transport.partitioner import partition_for_key

if TYPE_CHECKING:
    from .app import App
    from .channels import Topic
    from .runtime.membership import GroupView
    from .tables import Table
    from .web import Request, Response, Web

__all__ = ["Router"]

#: Per worker URL: the partitions it holds actively and as standby.
PartitionMap = dict[str, dict[str, list[int]]]


class Router:
    """Where table keys and topic keys live, by worker URL."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._key_encoders: dict[str, Callable[[Any], bytes | None]] = {}

    @property
    def view(self) -> GroupView:
        return self.app.membership.view

    # -- keys ---------------------------------------------------------------------------

    def table_partition(self, table: Table, key: Any) -> int:
        """The partition of ``table`` that holds ``key``."""
        if table.use_partitioner:
            encoded = table.encode_key(key)
        else:
            encode = self._key_encoders.get(table.name)
            if encode is None:
                schema = Schema(key_type=table.key_type)
                encode = self._key_encoders[table.name] = schema.key_encoder(
                    self.app.conf.key_serializer)
            encoded = encode(key)
        if encoded is None:
            raise RouterError(f"Table {table.name!r}: a None key has no partition")
        return partition_for_key(encoded, table.partitions)

    def key_store(self, table_name: str, key: Any) -> str:
        """The URL of the worker that owns ``key``'s partition of table ``table_name``."""
        partition = self.table_partition(self.app.tables[table_name], key)
        if partition in {tp.partition for tp in self.app.assigned_partitions()}:
            return self.app.conf.canonical_url
        owner = self.view.partition_owners().get(partition)
        return self._url_of(owner, f"partition {partition} of table {table_name!r}")

    def external_topic_key_store(self, topic: Topic[Any], key: Any) -> str:
        """The URL of the worker assigned ``key``'s partition of ``topic``."""
        from .types import TP

        conf = self.app.conf
        name = topic.get_topic_name()
        encoded = topic.schema.key_encoder(conf.key_serializer)(key)
        if encoded is None:
            raise RouterError(f"Topic {name!r}: a None key has no partition")
        count = (self.view.partition_count(name) or topic.partitions
                 or conf.topic_partitions)
        tp = TP(name, partition_for_key(encoded, count))
        if tp in self.app.assigned_partitions():
            return conf.canonical_url
        owner = self.view.owner(tp)
        return self._url_of(owner.key if owner is not None else None,
                            f"partition {tp.partition} of topic {name!r}")

    def _url_of(self, key: str | None, what: str) -> str:
        """The URL of the worker ``key`` of the view (this worker's URL is not taken:
        it holds the partition only if its assignment says so, checked before)."""
        for worker in self.view.workers:
            if (worker.key == key and worker.url is not None
                    and worker.url != self.app.conf.canonical_url):
                return worker.url
        raise RouterError(f"No worker of group {self.app.conf.id!r} is known to hold {what} "
                          "(the group is rebalancing, or the worker does not run yet)")

    # -- requests (``@app.table_route``) ---------------------------------------------------

    async def route_req(self, table_name: str, key: Any, web: Web, request: Request
                        ) -> Response:
        """Forward ``request`` to the worker owning ``key`` of the table.

        Raises :class:`~fluvial.exceptions.SameNode` when this worker owns it
        (serve it here), a 503 ``ServiceUnavailable`` while the owner is
        unknown, unreachable or still restoring the partition.
        """
        from .web.exceptions import NotFound
        from .web.routing import unavailable

        if table_name not in self.app.tables:
            raise NotFound("Unknown table", table=table_name)
        what = f"Key {key!r} of table {table_name!r}"
        try:
            owner = self.key_store(table_name, key)
        except RouterError as exc:
            raise unavailable(str(exc)) from exc
        if owner == self.app.conf.canonical_url:
            partition = self.table_partition(self.app.tables[table_name], key)
            if partition in self.app.tables.recovering:
                raise unavailable(f"{what}: partition {partition} is still being restored")
            raise SameNode(what)
        return await web.forwarder.route(owner, what, request)

    async def route_topic_req(self, topic: Topic[Any], key: Any, web: Web, request: Request
                              ) -> Response:
        """Forward ``request`` to the worker assigned ``key``'s partition of ``topic``."""
        from .web.routing import unavailable

        what = f"Key {key!r} of topic {topic.get_topic_name()!r}"
        try:
            owner = self.external_topic_key_store(topic, key)
        except RouterError as exc:
            raise unavailable(str(exc)) from exc
        return await web.forwarder.route(owner, what, request)

    # -- metadata -------------------------------------------------------------------------

    def table_metadata(self, table_name: str) -> PartitionMap:
        """Per worker URL: ``{"active": [...], "standby": [...]}`` partitions of the table."""
        table = self.app.tables[table_name]
        view = self.view
        owners = {p: k for p, k in view.partition_owners().items() if p < table.partitions}
        standbys: dict[int, tuple[str, ...]] = {}
        if not table.is_global and self.app.conf.table_standby_replicas > 0:
            standbys = standby_placement(owners, view.keys,
                                         self.app.conf.table_standby_replicas)
        result: PartitionMap = {}
        for worker in view.workers:
            if worker.url is None:
                continue
            active = sorted(p for p, k in owners.items() if k == worker.key)
            if table.is_global:
                standby = sorted(set(range(table.partitions)) - set(active))
            else:
                standby = sorted(p for p, keys in standbys.items() if worker.key in keys)
            result[worker.url] = {"active": active, "standby": standby}
        return result

    def tables_metadata(self) -> dict[str, dict[str, dict[str, list[int]]]]:
        """Per worker URL, per table name: its active and standby partitions."""
        result: dict[str, dict[str, dict[str, list[int]]]] = {}
        for table in self.app.tables:
            for url, parts in self.table_metadata(table.name).items():
                result.setdefault(url, {})[table.name] = parts
        return result
