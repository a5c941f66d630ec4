"""``App``: where topics, agents, tables, timers and commands are declared."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from .agents import Agent
from .agents.replies import ReplyConsumer
from .channels import Channel, Topic, TopicDeclarations
from .clock import Clock, SystemClock
from .exceptions import ImproperlyConfigured, WorkerStopped
from .router import Router
from .runtime.conductor import Conductor
from .runtime.membership import Membership
from .runtime.scheduling import Scheduler
from .serializers import Schema
from .settings import Settings
from .tables import GlobalTable, SetGlobalTable, SetTable, Table, TableManager
from .transport import by_url
from .types import ConsumerT, ProducerT, RecordMetadata, TransportT

__all__ = ["App"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """A stream processing application (``faust.App('hello-app', broker=...)``)."""

    def __init__(self, id: str, *, clock: Clock | None = None, **settings: Any) -> None:
        self._id = id
        self._arguments = settings
        self._conf: Settings | None = None
        self._overrides: dict[str, Any] = {}
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
        self.conductor = Conductor(self)
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

    def __repr__(self) -> str:
        return f"<App {self._id}>"

    # -- configuration ---------------------------------------------------------

    @property
    def conf_id(self) -> str:
        return self._id

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
        """Resolve the settings (command line > ``FLUVIAL_*`` env > ``App()`` > default)."""
        self._conf = Settings.from_sources(
            self._id, self._arguments, environ=os.environ, overrides=self._overrides
        )
        if not self._conf.reply_to:
            self._conf = self._conf.replace(reply_to=f"f-reply-{uuid.uuid4()}")

    def override(self, **settings: Any) -> None:
        """Apply command-line settings (before the worker starts)."""
        if self.started:
            raise ImproperlyConfigured("Settings cannot change while the app runs")
        self._overrides.update({k: v for k, v in settings.items() if v is not None})
        if self._conf is not None:
            self.finalize()

    # -- declarations ------------------------------------------------------------

    def topic(self, *topics: str, **kwargs: Any) -> Topic[Any]:
        """A Kafka topic (``app.topic('orders', value_type=Order)``).

        Declaring a topic again with another partition count or serializer is
        refused: only one of them could be true of the topic.
        """
        topic: Topic[Any] = Topic(self, topics=topics, **kwargs)
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
            agent = Agent(fun, app=self, channel=channel, name=name, concurrency=concurrency,
                          sink=sink, isolated_partitions=isolated_partitions,
                          supervisor_strategy=supervisor_strategy, on_error=on_error,
                          **kwargs)
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
        if window is not None:
            raise ImproperlyConfigured("Pass windows with table.tumbling()/hopping()")
        return self.tables.add(Table(self, name=name, default=default, partitions=partitions,
                                     help=help, **kwargs))

    def GlobalTable(self, name: str, *, default: Callable[[], Any] | None = None,
                    partitions: int | None = None, help: str | None = None,
                    **kwargs: Any) -> GlobalTable:
        return self.tables.add(GlobalTable(self, name=name, default=default,  # type: ignore[return-value]
                                           partitions=partitions, help=help, **kwargs))

    def SetTable(self, name: str, *, start_manager: bool = False,
                 partitions: int | None = None, help: str | None = None,
                 **kwargs: Any) -> SetTable:
        """A table of sets, changelogged as deltas (``app.SetTable('active_orders')``)."""
        return self.tables.add(SetTable(self, name=name, start_manager=start_manager,  # type: ignore[return-value]
                                        partitions=partitions, help=help, **kwargs))

    def SetGlobalTable(self, name: str, *, start_manager: bool = False,
                       partitions: int | None = None, help: str | None = None,
                       **kwargs: Any) -> SetGlobalTable:
        """A set table every worker holds whole."""
        return self.tables.add(SetGlobalTable(self, name=name, start_manager=start_manager,  # type: ignore[return-value]
                                              partitions=partitions, help=help, **kwargs))

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

    def require_copartitioned(self, *sources: Any) -> None:
        """Check at start-up that these topics/tables have the same partition count."""
        self._copartitioned.append(sources)

    def is_leader(self) -> bool:
        """Whether this worker runs ``on_leader`` timers (one worker: always)."""
        return True

    # -- sending -----------------------------------------------------------------

    def _resolve_channel(self, channel: str | Channel[Any] | Agent) -> Channel[Any]:
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
        target = self._resolve_channel(channel)
        return await target.send(key=key, value=value, partition=partition,
                                 timestamp=timestamp, headers=headers, schema=schema,
                                 key_serializer=key_serializer,
                                 value_serializer=value_serializer)

    # -- runtime pieces ------------------------------------------------------------

    @property
    def transport(self) -> TransportT:
        if self._transport is None:
            from .auth import credentials_config

            credentials = credentials_config(self.conf.broker_credentials)
            self._transport = by_url(self.conf.broker, **credentials)
        return self._transport

    @property
    def producer(self) -> ProducerT:
        if self._producer is None:
            conf = self.conf
            self._producer = self.transport.create_producer(**{
                "client.id": conf.broker_client_id,
                "linger.ms": conf.producer_linger_ms,
                "acks": conf.producer_acks,
            })
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
            self._on_fatal(exc)  # type: ignore[arg-type]

    def _on_fatal(self, error: BaseException) -> None:
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


