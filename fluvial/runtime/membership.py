"""Who is in the app's consumer group: each worker's URL and assigned partitions.

Every worker advertises its ``canonical_url`` in the ``client.id`` of its
group consumer (``"{broker_client_id}|{canonical_url}"``): librdkafka has no
custom assignor to carry user data, but the group coordinator reports every
member's client id. :class:`Membership` asks the transport for the group's
members after each rebalance and every :data:`REFRESH_S` seconds, keeps the
latest consistent :class:`GroupView`, and hands it to its listeners (standby
replicas); ``app.router`` reads it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

from ..clock import wait_event
from ..exceptions import GroupRebalancing, TransportError
from ..types import TP, GroupMember

if TYPE_CHECKING:
    from ..app import App
    from ..settings import Settings

__all__ = ["GroupView", "Membership", "Worker", "group_client_id", "parse_client_id"]

logger = logging.getLogger(__name__)

#: Seconds between two refreshes of the membership view when nothing changes.
REFRESH_S = 3.0
#: Seconds before asking again when the view was taken in the middle of a rebalance.
RETRY_S = 0.5
#: Between the broker client id and the URL in a group consumer's client id.
SEPARATOR = "|"
#: The end of the leader topic's name: its partition is no table partition.
LEADER_SUFFIX = "-__assignor-__leader"


def group_client_id(conf: Settings) -> str:
    """The ``client.id`` of a worker's group consumer: it carries the worker's URL."""
    return f"{conf.broker_client_id}{SEPARATOR}{conf.canonical_url}"


def parse_client_id(client_id: str) -> str | None:
    """The worker URL in a group consumer's client id (``None``: not a fluvial worker)."""
    _, sep, url = client_id.partition(SEPARATOR)
    return url if sep and url else None


class Worker(NamedTuple):
    """One member of the group, with the URL it advertises."""

    member_id: str
    client_id: str
    host: str
    url: str | None
    assignment: frozenset[TP]

    @property
    def key(self) -> str:
        """A stable id: the URL (it survives restarts), else the member id."""
        return self.url or self.member_id


class GroupView:
    """One snapshot of the group: workers sorted by their stable id."""

    def __init__(self, members: Iterable[GroupMember] = ()) -> None:
        workers = [Worker(m.member_id, m.client_id, m.host, parse_client_id(m.client_id),
                          frozenset(tp for tp in m.assignment
                                    if not tp.topic.endswith(LEADER_SUFFIX)))
                   for m in members]
        self.workers: tuple[Worker, ...] = tuple(sorted(workers, key=lambda w: (w.key,
                                                                               w.member_id)))
        self._by_tp: dict[TP, Worker] = {}
        self._counts: dict[str, int] = {}
        for worker in self.workers:
            for tp in worker.assignment:
                self._by_tp.setdefault(tp, worker)
                self._counts[tp.topic] = max(self._counts.get(tp.topic, 0), tp.partition + 1)

    def __repr__(self) -> str:
        return f"<GroupView {[w.key for w in self.workers]}>"

    @property
    def keys(self) -> list[str]:
        return [w.key for w in self.workers]

    def owner(self, tp: TP) -> Worker | None:
        """The worker assigned ``tp`` (``None``: nobody, e.g. during a rebalance)."""
        return self._by_tp.get(tp)

    def partition_count(self, topic: str) -> int | None:
        """The partitions of ``topic`` that the group is assigned (``None``: not seen)."""
        return self._counts.get(topic)

    def partition_owners(self, topics: Iterable[str] | None = None) -> dict[int, str]:
        """Partition number -> the key of the worker that owns it (tables live there).

        Tables are co-partitioned with the topics the group reads, so a worker
        assigned partition ``p`` of any of those topics holds partition ``p``
        of every table. Where several hold some topic's ``p`` (topics of
        different sizes), the lowest key counts.
        """
        wanted = None if topics is None else set(topics)
        owners: dict[int, str] = {}
        for tp, worker in self._by_tp.items():
            if wanted is not None and tp.topic not in wanted:
                continue
            current = owners.get(tp.partition)
            if current is None or worker.key < current:
                owners[tp.partition] = worker.key
        return owners

    def me(self, url: str, assignment: set[TP]) -> Worker | None:
        """This worker in the view: its URL, and its assignment when URLs clash."""
        mine = [w for w in self.workers if w.url == url]
        if len(mine) > 1:
            mine = [w for w in mine if w.assignment == assignment]
        return mine[0] if len(mine) == 1 else None


Listener = Callable[[GroupView], Awaitable[None]]


class Membership:
    """``app.membership``: the latest :class:`GroupView` of the app's group."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.view = GroupView()
        self._listeners: list[Listener] = []
        self._poked: asyncio.Event | None = None
        self._warned_clash = False
        self._clash_since: float | None = None
        #: Views taken (for tests and metrics).
        self.refreshes = 0

    def listen(self, listener: Listener) -> None:
        """Call ``listener(view)`` with every new consistent view."""
        self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def changed(self) -> None:
        """The group rebalanced: refresh the view now."""
        if self._poked is not None:
            self._poked.set()

    def consistent(self, view: GroupView) -> bool:
        """Whether ``view`` shows this worker with the partitions it really holds."""
        conf = self.app.conf
        assignment = self.app.assigned_partitions()
        me = view.me(conf.canonical_url, assignment)
        if me is None:
            clash = sum(w.url == conf.canonical_url for w in view.workers) > 1
            # A killed worker's old membership lingers until its session times out,
            # beside its restarted self: only a clash that outlasts that is a mistake.
            now = time.monotonic()
            if not clash:
                self._clash_since = None
            elif self._clash_since is None:
                self._clash_since = now
            elif (not self._warned_clash
                  and now - self._clash_since > conf.broker_session_timeout):
                self._warned_clash = True
                logger.warning("Several workers of group %r advertise canonical_url %r: give "
                               "each worker its own (web_host/web_port or canonical_url)",
                               conf.id, conf.canonical_url)
            return False
        self._clash_since = None
        return set(me.assignment) == assignment

    async def refresh(self) -> bool:
        """Ask the broker; keep and announce the view if it is consistent."""
        members = await self.app.transport.describe_group(self.app.conf.id)
        view = GroupView(members)
        if not self.consistent(view):
            return False
        self.view = view
        self.refreshes += 1
        for listener in list(self._listeners):
            await listener(view)
        return True

    async def run(self) -> None:
        """Refresh after each rebalance and every REFRESH_S seconds, until cancelled."""
        self._poked = asyncio.Event()
        self._poked.set()
        wait = REFRESH_S
        last_error = ""
        while True:
            await wait_event(self._poked, wait)
            self._poked.clear()
            try:
                ok = await self.refresh()
            except GroupRebalancing:
                ok = False  # asked again shortly
            except TransportError as exc:
                # Once per distinct error, not every retry.
                if str(exc) != last_error:
                    logger.warning("Could not describe the consumer group: %s", exc)
                    last_error = str(exc)
                wait = REFRESH_S
                continue
            last_error = ""
            wait = REFRESH_S if ok else RETRY_S
