"""``App``: where topics, agents, tables, timers and commands are declared."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import sys
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from . import router as _router_module
from .agents import Agent
from .agents.replies import ReplyConsumer
from .channels import Channel, Topic, TopicDeclarations
from .clock import Clock, SystemClock
from .exceptions import AlreadyConfiguredWarning, ImproperlyConfigured, WorkerStopped
from .router import Router
from .runtime.conductor import Conductor
from .runtime.flow_control import FlowControl
from .runtime.membership import Membership
from .runtime.scheduling import Scheduler
from .sensors import Monitor, SensorDelegate
from .serializers import Registry, Schema
from .settings import Settings
from .signals import Signal, SyncSignal
from .streams import Stream
from .tables import GlobalTable, SetGlobalTable, SetTable, Table, TableManager
from .transport import by_url
from .transport.tuning import client_settings, consumer_settings, producer_settings
from .types import TP, ConsumerT, ProducerT, RecordMetadata, TransportT

if TYPE_CHECKING:
    from .sensors.snapshot import RecentErrors
    from .web import View, Web
    from .web.sockets import WebSocketHandler

__all__ = ["App"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class App:
    """A stream processing application (``faust.App('hello-app', broker=...)``)."""

    def __init__(self, id: str, *, clock: Clock | None = None, monitor: Monitor | None = None,
                 **settings: Any) -> None:
        self._id = id
        self._arguments = settings
        caller = inspect.currentframe()
        #: The module that created the app (``discover()`` starts from its package).
        self._defined_in: str = (caller.f_back.f_globals.get("__name__", "")
                                 if caller is not None and caller.f_back is not None else "")
        self._conf: Settings | None = None
        self._serializers: Registry | None = None
        self._config_source: Any = None
        self._silent_source = False
        #: The configuration signals were sent (``finalize`` sends them once).
        self._configured = False
        self._overrides: dict[str, Any] = {}
        #: ``app.conf.NAME = value`` assignments, re-applied whenever settings are resolved.
        self._assigned: dict[str, Any] = {}
        #: Faust's ``app.flow_control``: the worker fetches only while it is active.
        self.flow_control = FlowControl()
        self._discovered = False
        self.clock: Clock = clock or SystemClock()
        self.agents: dict[str, Agent] = {}
        self.topics: list[Channel[Any]] = []
        self._topics_by_name: dict[str, Topic[Any]] = {}
        self._declarations = TopicDeclarations()
        #: Groups of topics/tables that must be co-partitioned (joins).
        self._copartitioned: list[tuple[Any, ...]] = []
        self.tables = TableManager(self)
        self.scheduler = Scheduler(self)
        self.commands: dict[str, Any] = {}
        self.services: list[Any] = []
        #: The app's consumer group as last seen, and where keys live (``app.router``).
        self.membership = Membership(self)
        self.router = Router(self)
        self._transport: TransportT | None = None
        self._producer: ProducerT | None = None
        self._producer_started: asyncio.Event | None = None
        self._replies: ReplyConsumer | None = None
        self._background: set[asyncio.Task[Any]] = set()
        #: Topic declarations started by ``send_soon``; a checkpoint waits for them.
        self.declarations: list[asyncio.Task[None]] = []
        self._stopped: asyncio.Event | None = None
        self.fatal_error: BaseException | None = None
        self.started = False
        #: While the worker runs: the consumer of the app's group, the started services.
        self.group_consumer: ConsumerT | None = None
        self.running_services: list[Any] = []
        self._web: Web | None = None
        #: The sensors told what the worker does (``app.sensors.add(sensor)``).
        self.sensors = SensorDelegate(self)
        #: While the worker runs: the last errors logged (the dashboard shows them).
        self.recent_errors: RecentErrors | None = None
        self._monitor = monitor
        self._signals()
        #: The worker's runtime: fetching, dispatch, checkpoints, rebalances.
        self.conductor = Conductor(self)

    def _signals(self) -> None:
        """Faust's signals, each sent with this app as the sender."""
        self.on_before_configured = SyncSignal("on_before_configured", self)
        self.on_configured = SyncSignal("on_configured", self)
        self.on_after_configured = SyncSignal("on_after_configured", self)
        self.on_worker_init = SyncSignal("on_worker_init", self)
        self.on_partitions_assigned = Signal("on_partitions_assigned", self)
        self.on_partitions_revoked = Signal("on_partitions_revoked", self)
        self.on_rebalance_complete = Signal("on_rebalance_complete", self)
        self.on_before_shutdown = Signal("on_before_shutdown", self)
        self.on_produce_message = SyncSignal("on_produce_message", self)

    @property
    def monitor(self) -> Monitor:
        """Statistics of the worker (``App(monitor=...)``, else a :class:`Monitor`);
        added to :attr:`sensors` when the app starts."""
        if self._monitor is None:
            self._monitor = Monitor()
        return self._monitor

    @monitor.setter
    def monitor(self, monitor: Monitor) -> None:
        if self._monitor is not None:
            self.sensors.remove(self._monitor)
        self._monitor = monitor
        if self.started:
            self.sensors.add(monitor)

    def __repr__(self) -> str:
        return f"<App {self._id}>"

    # -- configuration ---------------------------------------------------------

    @property
    def conf_id(self) -> str:
        """``app.conf.id``: the id, with ``-v{version}`` from version 2 (``id_format``)."""
        return self.conf.id

    @property
    def id(self) -> str:
        return self._id

    @property
    def conf(self) -> Settings:
        if self._conf is None:
            self.finalize()
        assert self._conf is not None
        return self._conf

    def finalize(self) -> None:
        """Resolve the settings (see :mod:`fluvial.settings` for the sources' order)."""
        first = not self._configured
        self._configured = True
        if first:
            self.on_before_configured.send()
        conf = Settings.from_sources(self._id, self._settings_arguments(), environ=os.environ,
                                     assigned=self._assigned, overrides=self._overrides)
        if not conf.reply_to:
            previous = self._conf.reply_to if self._conf is not None else ""
            reply_to = previous or f"{conf.reply_to_prefix}{uuid.uuid4()}"
            conf = conf.replace(reply_to=reply_to)
        if self._conf is None:
            conf.bind(self._assign_setting)
            self._conf = conf
        else:
            self._conf.update(conf)  # the same object: references to app.conf stay current
        if first:
            self.on_configured.send(self._conf)
            self.on_after_configured.send()

    def _assign_setting(self, name: str, value: Any) -> None:
        """``app.conf.NAME = value``: checked like an ``App()`` argument, refused once started."""
        if self.started:
            raise ImproperlyConfigured(
                f"app.conf.{name} cannot be changed: app {self._id!r} has started. Set it "
                "before the worker starts (App(...), the environment or the command line).")
        self.conf.assigned(name, value)  # raises for a bad value, naming the setting
        missing = object()
        previous = self._assigned.get(name, missing)
        self._assigned[name] = value
        try:
            self.finalize()
        except BaseException:
            if previous is missing:
                del self._assigned[name]
            else:
                self._assigned[name] = previous
            raise

    @property
    def serializers(self) -> Registry:
        """Keys and values to bytes and back by type, with the app's default serializers."""
        if self._serializers is None:
            conf = self.conf
            self._serializers = Registry(key_serializer=conf.key_serializer,
                                         value_serializer=conf.value_serializer)
        return self._serializers

    def config_from_object(self, obj: Any, *, silent: bool = False,
                           force: bool = False) -> None:
        """Read settings from a module (or its dotted name), an object or a mapping.

        The setting names found there (``broker``, ``store``... or in upper case)
        are used; ``App()`` arguments win over them. Called after the settings
        were read, they are read again (with an ``AlreadyConfiguredWarning``).
        ``silent=True``: a module that cannot be imported is ignored.
        """
        self._config_source = obj
        self._silent_source = silent
        if self._conf is not None:
            warnings.warn(AlreadyConfiguredWarning(
                f"App {self._id!r} was configured already: reading its settings again"),
                stacklevel=2)
        if force or self._conf is not None:
            self.finalize()

    def _settings_arguments(self) -> dict[str, Any]:
        """The ``App()`` arguments over the settings of ``config_from_object``."""
        source = self._config_source
        if source is None:
            return dict(self._arguments)
        from dataclasses import fields

        if isinstance(source, str):
            try:
                source = importlib.import_module(source)
            except ImportError:
                if self._silent_source:
                    return dict(self._arguments)
                raise
        items = source.items() if isinstance(source, Mapping) else vars(source).items()
        known = {f.name for f in fields(Settings)}
        found = {name.lower(): value for name, value in items
                 if isinstance(name, str) and name.lower() in known
                 and (name.islower() or name.isupper())}
        return {**found, **self._arguments}

    def override(self, **settings: Any) -> None:
        """Apply command-line settings (before the worker starts)."""
        if self.started:
            raise ImproperlyConfigured("Settings cannot change while the app runs")
        self._overrides.update({k: v for k, v in settings.items() if v is not None})
        if self._conf is not None:
            self.finalize()

    def discover(self, *extra_modules: str) -> list[str]:
        """Import the modules ``autodiscover`` names (and ``extra_modules``) so the
        agents, tables, timers and commands they declare register with this app.

        With neither, the app's own package (``origin``, else the package of the
        module that created the app). Returns the names of the modules imported;
        the worker calls it at start when ``autodiscover`` is set.
        """
        from .discovery import discover_modules, packages_to_scan

        names = [*packages_to_scan(self.conf), *extra_modules]
        if not names:
            # Nothing named: the app's own package (origin, else where the app was made).
            origin = self.conf.origin or self._origin_package()
            names = [origin] if origin else []
        self._discovered = True
        return discover_modules(names)
    def _class(self, setting: str, base: type[T]) -> type[T]:
        """The class to instantiate: Faust's class-override setting, or ``base``."""
        from .extensions import resolve_class

        return resolve_class(setting, getattr(self.conf, setting), base)

    # -- declarations ------------------------------------------------------------

    def topic(self, *topics: str, **kwargs: Any) -> Topic[Any]:
        """A Kafka topic (``app.topic('orders', value_type=Order)``).

        Declaring a topic again with another partition count or serializer is
        refused: only one of them could be true of the topic.
        """
        topic: Topic[Any] = self._class("Topic", Topic)(self, topics=topics, **kwargs)
        self._declarations.check(topic)
        self.topics.append(topic)
        return topic

    def channel(self, *, schema: Schema | None = None, key_type: Any = None,
                value_type: Any = None, maxsize: int | None = None) -> Channel[Any]:
        """An in-memory channel."""
        return Channel(self, schema=schema, key_type=key_type, value_type=value_type,
                       maxsize=maxsize)

    def agent(self, channel: str | Channel[Any] | None = None, *, name: str | None = None,
              concurrency: int = 1, sink: Iterable[Any] | None = None,
              isolated_partitions: bool = False, supervisor_strategy: str | None = None,
              on_error: str | None = None,
              **kwargs: Any) -> Callable[[Callable[..., Any]], Agent]:
        """Decorator: an async function (or async generator) over a stream.

        ``on_error`` (``skip``, ``retry``, ``dead_letter``, ``stop``; default the
        ``processing_error_policy`` setting) decides what becomes of an event
        the agent raises on.
        """

        def decorate(fun: Callable[..., Any]) -> Agent:
            agent = self._class("Agent", Agent)(
                fun, app=self, channel=channel, name=name, concurrency=concurrency,
                sink=sink, isolated_partitions=isolated_partitions,
                supervisor_strategy=supervisor_strategy, on_error=on_error, **kwargs)
            if agent.name in self.agents:
                raise ImproperlyConfigured(f"An agent named {agent.name!r} already exists")
            self.agents[agent.name] = agent
            return agent

        return decorate

    actor = agent

    def Table(self, name: str, *, default: Callable[[], Any] | None = None,
              window: Any = None, partitions: int | None = None, help: str | None = None,
              **kwargs: Any) -> Table:
        """A sharded table (``app.Table('counts', default=int)``)."""
        table = self.tables.add(self._class("Table", Table)(
            self, name=name, default=default, partitions=partitions, help=help, **kwargs))
        if window is not None:
            # As table.using_window(window): the windowed view (table[k].current() ...).
            return table.using_window(window)  # type: ignore[return-value]
        return table

    def GlobalTable(self, name: str, *, default: Callable[[], Any] | None = None,
                    partitions: int | None = None, help: str | None = None,
                    **kwargs: Any) -> GlobalTable:
        table = self._class("GlobalTable", GlobalTable)(self, name=name, default=default,
                                                        partitions=partitions, help=help,
                                                        **kwargs)
        return self.tables.add(table)  # type: ignore[return-value]

    def SetTable(self, name: str, *, start_manager: bool = False,
                 partitions: int | None = None, help: str | None = None,
                 **kwargs: Any) -> SetTable:
        """A table of sets, changelogged as deltas (``app.SetTable('active_orders')``)."""
        table = self._class("SetTable", SetTable)(self, name=name, start_manager=start_manager,
                                                  partitions=partitions, help=help, **kwargs)
        return self.tables.add(table)  # type: ignore[return-value]

    def SetGlobalTable(self, name: str, *, start_manager: bool = False,
                       partitions: int | None = None, help: str | None = None,
                       **kwargs: Any) -> SetGlobalTable:
        """A set table every worker holds whole."""
        table = self._class("SetGlobalTable", SetGlobalTable)(
            self, name=name, start_manager=start_manager, partitions=partitions, help=help,
            **kwargs)
        return self.tables.add(table)  # type: ignore[return-value]

    def task(self, fun: Callable[..., Any] | None = None, *, on_leader: bool = False,
             name: str | None = None) -> Any:
        """Decorator: run a coroutine function once the worker has started."""
        def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
            self.scheduler.add_task(f, on_leader=on_leader)
            return f
        return decorate(fun) if fun is not None else decorate

    def timer(self, interval: float, *, on_leader: bool = False,
              name: str | None = None) -> Callable[[F], F]:
        """Decorator: run a coroutine function every ``interval`` seconds, without drift."""
        def decorate(f: F) -> F:
            self.scheduler.add_timer(f, interval, on_leader=on_leader)
            return f
        return decorate

    def crontab(self, cron_format: str, *, timezone: Any = None,
                on_leader: bool = False) -> Callable[[F], F]:
        """Decorator: run a coroutine function on a cron schedule."""
        def decorate(f: F) -> F:
            self.scheduler.add_crontab(f, cron_format, timezone=timezone, on_leader=on_leader)
            return f
        return decorate

    def service(self, cls: Any) -> Any:
        """Decorator: a class whose instance is started and stopped with the worker.

        It may define ``async def start(self)`` / ``async def stop(self)`` and
        ``async def run(self)`` (run as a task for the worker's lifetime).
        """
        self.services.append(cls)
        return cls

    def command(self, *options: Any, **kwargs: Any) -> Callable[[F], F]:
        """Decorator: a custom CLI command (``fluvial -A app NAME``)."""
        from .cli.custom import make_command

        def decorate(f: F) -> F:
            command = make_command(self, f, options, **kwargs)
            self.commands[command.name or f.__name__] = command
            return f
        return decorate

    # -- web -----------------------------------------------------------------------------

    @property
    def web(self) -> Web:
        """The worker's web server: its routes, and ``app.web.asgi``, the ASGI app."""
        if self._web is None:
            from .web import Web

            self._web = Web(self)
        return self._web

    def page(self, path: str, *, base: type[View] | None = None,
             cors_options: Mapping[str, Any] | None = None,
             name: str | None = None) -> Callable[[Any], type[View]]:
        """Decorator: serve a view at ``path`` (a ``web.View`` subclass, or a function
        ``async def handler(web, request, **match_info)`` answering GET).

        ``cors_options``: Starlette ``CORSMiddleware`` options for this view alone.
        """
        from .web import View

        def decorate(handler: Any) -> type[View]:
            if isinstance(handler, type) and issubclass(handler, View):
                view_cls = handler
            else:
                view_cls = (base or View).from_handler(handler)
            self.web.add_view(view_cls, path=path, name=name, cors_options=cors_options)
            return view_cls
        return decorate

    def websocket(self, path: str, *, name: str | None = None
                  ) -> Callable[[WebSocketHandler], WebSocketHandler]:
        """Decorator: serve a websocket at ``path`` with ``async def handler(web, ws,
        **match_info)``, ``ws`` a Starlette ``WebSocket`` the handler accepts itself."""
        from .web.sockets import websocket_endpoint

        def decorate(handler: WebSocketHandler) -> WebSocketHandler:
            self.web.add_websocket_route(path, websocket_endpoint(self.web, handler),
                                         name=name)
            return handler
        return decorate

    def table_route(self, table: Any, shard_param: str | None = None, *,
                    query_param: str | None = None, match_info: str | None = None,
                    exact_key: Any = None) -> Callable[[F], F]:
        """Decorator of a view method: answer from the worker that owns the key in ``table``
        (taken from the URL's ``match_info``, a ``query_param``, or an ``exact_key``)."""
        from .web.routing import table_route

        return table_route(self, table, shard_param, query_param=query_param,  # type: ignore[return-value]
                           match_info=match_info, exact_key=exact_key)

    def topic_route(self, topic: Any, shard_param: str | None = None, *,
                    query_param: str | None = None, match_info: str | None = None,
                    exact_key: Any = None) -> Callable[[F], F]:
        """Decorator of a view method: answer from the worker assigned the key's partition."""
        from .web.routing import topic_route

        return topic_route(self, topic, shard_param, query_param=query_param,  # type: ignore[return-value]
                           match_info=match_info, exact_key=exact_key)

    def require_copartitioned(self, *sources: Any) -> None:
        """Check at start-up that these topics/tables have the same partition count."""
        self._copartitioned.append(sources)

    def stream(self, channel: Any, **kwargs: Any) -> Stream[Any]:
        """A stream over a channel, a topic (or its name), or an (async) iterable of values."""
        if isinstance(channel, str):
            channel = self.topic(channel)
        if isinstance(channel, Channel):
            return channel.stream(**kwargs)
        if not (hasattr(channel, "__aiter__") or hasattr(channel, "__iter__")):
            raise ImproperlyConfigured(
                f"app.stream() takes a channel, a topic name or an iterable, not {channel!r}")
        source = channel
        feed: Channel[Any] = self.channel()

        async def forward() -> None:
            if hasattr(source, "__aiter__"):
                async for value in source:
                    await feed.send(value=value)
            else:
                for value in source:
                    await feed.send(value=value)

        return feed.stream(companions=(forward,), **kwargs)

    async def commit(self, topics: Any = None) -> bool:
        """Commit the offsets of what was processed, now (a checkpoint: table changelogs
        and sent messages are flushed first). Every processed partition is committed,
        not only those of ``topics`` (accepted as in Faust). False outside a worker."""
        if not self.started or self.group_consumer is None:
            return False
        await self.conductor.checkpoints.checkpoint()
        return True

    def _origin_package(self) -> str | None:
        """The top package of the module that created this app (``None``: ``__main__``)."""
        package = self._defined_in.split(".")[0]
        return None if package in ("__main__", "") else package

    def assigned_partitions(self) -> set[TP]:
        """The topic partitions the group assigned to this worker now."""
        return self.conductor.assignment()

    def is_leader(self) -> bool:
        """Whether this worker is its group's leader and runs the ``on_leader`` timers.

        As in Faust: the leader is the worker assigned partition 0 of the
        one-partition topic ``{app_id}-__assignor-__leader``, which every
        worker subscribes to; the group gives it to exactly one of them.
        False outside a worker, and during a rebalance that took it away.
        """
        return self.conductor.rebalance.leader

    # -- sending -----------------------------------------------------------------

    def resolve_channel(self, channel: str | Channel[Any] | Agent) -> Channel[Any]:
        """The channel to send to for ``channel``: an agent's, a channel, or the topic
        of that name (one :class:`Topic` per name)."""
        if isinstance(channel, Agent):
            return channel.channel
        if isinstance(channel, Channel):
            return channel
        if isinstance(channel, str):
            # Sending by name (replies, ``app.send('topic')``) reuses one Topic per name.
            topic = self._topics_by_name.get(channel)
            if topic is None:
                topic = self._topics_by_name[channel] = self.topic(channel)
            return topic
        raise ImproperlyConfigured(f"Cannot send to {channel!r}")

    async def send(self, channel: str | Channel[Any] | Agent, key: Any = None,
                   value: Any = None, partition: int | None = None,
                   timestamp: float | None = None, headers: Any = None,
                   schema: Schema | None = None, key_serializer: Any = None,
                   value_serializer: Any = None, **kwargs: Any
                   ) -> asyncio.Future[RecordMetadata]:
        """Send a message to a topic, channel or agent."""
        target = self.resolve_channel(channel)
        return await target.send(key=key, value=value, partition=partition,
                                 timestamp=timestamp, headers=headers, schema=schema,
                                 key_serializer=key_serializer,
                                 value_serializer=value_serializer)

    # -- runtime pieces ------------------------------------------------------------

    @property
    def transport(self) -> TransportT:
        if self._transport is None:
            from .auth import credentials_config

            conf = self.conf
            given = conf.broker_credentials
            if given is None and conf.ssl_context is not None:
                from .auth import SSLCredentials

                given = SSLCredentials(conf.ssl_context)  # Faust's App(ssl_context=...)
            credentials = credentials_config(given)
            self._transport = by_url(conf.broker, **credentials, **client_settings(conf),
                                     consumer_config=consumer_settings(conf))
        return self._transport

    @property
    def producer(self) -> ProducerT:
        if self._producer is None:
            conf = self.conf
            self._producer = self.transport.create_producer(**{
                "client.id": conf.broker_client_id, **producer_settings(conf)})
        return self._producer

    async def producer_ready(self) -> None:
        """Start the producer if nobody has (sending from a script, or before the worker)."""
        if self._producer_started is None:
            self._producer_started = asyncio.Event()
            await self.transport.start()
            await self.producer.start()
            self._producer_started.set()
        else:
            await self._producer_started.wait()

    async def replace_producer(self, producer: ProducerT) -> None:
        """Send through ``producer`` from now on (the worker's transactional producer).

        A producer already started (a script sent before the worker ran) is
        flushed and stopped; :meth:`close` stops the new one.
        """
        old, self._producer = self._producer, producer
        if self._producer_started is None:
            self._producer_started = asyncio.Event()
            self._producer_started.set()
        if old is not None and old is not producer:
            try:
                await old.flush()
            finally:
                await old.stop()

    async def close(self) -> None:
        """Flush and release the clients a script started (``send`` outside a worker).

        The app can send again afterwards (a new producer is made). A running
        worker is stopped with :meth:`stop` instead.
        """
        if self.started:
            raise ImproperlyConfigured("The worker is running: use app.stop()")
        producer, self._producer = self._producer, None
        started, self._producer_started = self._producer_started, None
        try:
            if producer is not None and started is not None:
                try:
                    await producer.flush()
                finally:
                    await producer.stop()
        finally:
            transport, self._transport = self._transport, None
            if transport is not None:
                await transport.stop()

    @property
    def replies(self) -> ReplyConsumer:
        if self._replies is None:
            self._replies = ReplyConsumer(self)
        return self._replies

    def add_background_task(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` for the worker's lifetime; a crash stops the worker loudly."""
        task = asyncio.ensure_future(coro)
        task.set_name(f"{self._id}:{name}")
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            logger.error("Task %s crashed", task.get_name(), exc_info=exc)
            self.on_fatal(exc)  # type: ignore[arg-type]

    def on_fatal(self, error: BaseException) -> None:
        """Stop the worker with ``error`` (the first error is the one reported)."""
        if self.fatal_error is None:
            self.fatal_error = error
        if self._stopped is not None:
            self._stopped.set()

    async def declare_topics(self, topics: Iterable[Channel[Any]]) -> None:
        """Create the topics the app reads and writes, and check their partition counts."""
        if not self.conf.topic_allow_declare:
            return
        specs = [t.spec(name) for t in topics if isinstance(t, Topic) for name in t.topics]
        unique = {spec.name: spec for spec in specs}
        if unique:
            await self.transport.create_topics(list(unique.values()))

    # -- lifetime ---------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[App]:
        """Start everything; stop it all (commit processed offsets, flush) on exit."""
        from .runtime.lifecycle import start_app, stop_app

        self._stopped = asyncio.Event()
        try:
            await start_app(self)
            yield self
        finally:
            await stop_app(self)

    @asynccontextmanager
    async def lifespan(self, asgi_app: Any = None) -> AsyncIterator[None]:
        """Run the app inside another ASGI service's lifespan (``FastAPI(lifespan=app.lifespan)``).

        The app's agents, tables and timers run in that service's event loop
        for as long as it serves; mount ``app.web.asgi`` into it to serve the
        app's views too. The service owns the signals and the HTTP server, so
        the worker's own web server is not started. Tables default to RocksDB
        on Kafka, as in a worker.
        """
        from .runtime.worker import use_worker_defaults

        use_worker_defaults(self)
        async with self.running():
            yield

    async def wait_stopped(self) -> None:
        """Wait until ``stop()`` is called or a fatal error happens; re-raise that error."""
        assert self._stopped is not None, "the app is not running"
        await self._stopped.wait()
        if self.fatal_error is not None:
            raise WorkerStopped(str(self.fatal_error)) from self.fatal_error

    def stop(self) -> None:
        """Ask a running worker to stop (idempotent)."""
        if self._stopped is not None:
            self._stopped.set()

    def main(self, argv: list[str] | None = None) -> None:
        """Run the command line for this app (``python app.py worker``)."""
        from .cli import main_for_app

        main_for_app(self, argv)


async def call_with_app(fun: Callable[..., Any], app: App) -> Any:
    """Call a task/timer function, passing the app when it takes an argument (Faust style)."""
    params = [p for p in inspect.signature(fun).parameters.values()
              if p.default is inspect.Parameter.empty
              and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    result = fun(app) if params else fun()
    if inspect.isawaitable(result):
        result = await result
    return result




# Faust's module path of the router, ``faust.app.router``: this module is not a
# package, so the name is registered for the module that holds it.
sys.modules.setdefault(f"{__name__}.router", _router_module)
