"""``@app.agent``: a supervised async function over a stream."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..buffers import EventBuffer
from ..channels import Channel, Topic
from ..events import _current_event
from ..exceptions import AgentError, ImproperlyConfigured
from ..streams import Stream, _actor_agent, _actor_streams
from ..types import RecordMetadata
from .errors import ErrorPolicy
from .isolated import PartitionedBuffers
from .replies import CORRELATION_ID, REPLY_TO, ReqRepResponse, reply_headers

if TYPE_CHECKING:
    from ..app import App
    from ..events import Event
    from .testing import AgentTestWrapper

__all__ = ["Agent"]

logger = logging.getLogger(__name__)

AgentFun = Callable[[Stream[Any]], Any]
ReplyHook = Callable[["Event", Any], Awaitable[None]]

MAX_BACKOFF_S = 30.0


def canonical_name(fun: Callable[..., Any]) -> str:
    """``module.qualname``; a script run as ``__main__`` is named after its file."""
    module = fun.__module__
    if module == "__main__":
        main = sys.modules.get("__main__")
        file = getattr(main, "__file__", None)
        module = Path(file).stem if file else "__main__"
    return f"{module}.{fun.__qualname__}"


class Agent:
    """A stream processor: ``concurrency`` actors share the agent's channel.

    An actor that raises is logged with its traceback; the processing error
    policy (``on_error=``, see :mod:`.errors`) decides what becomes of the
    event it failed on, and the supervisor either restarts the actor
    (``supervisor_strategy='restart'``, the default) or stops the worker
    with a non-zero exit (``'stop'``). An actor whose loop ends (a ``break``)
    stops the worker: its stream would no longer be read.
    """

    def __init__(
        self,
        fun: AgentFun,
        *,
        app: App,
        channel: str | Channel[Any] | None = None,
        name: str | None = None,
        concurrency: int = 1,
        sink: Iterable[Any] | None = None,
        isolated_partitions: bool = False,
        supervisor_strategy: str | None = None,
        on_error: str | None = None,
        help: str | None = None,
        key_type: Any = None,
        value_type: Any = None,
        schema: Any = None,
        **kwargs: Any,
    ) -> None:
        if concurrency < 1:
            raise ImproperlyConfigured("Agent concurrency must be >= 1")
        if isolated_partitions and concurrency > 1:
            raise ImproperlyConfigured("isolated_partitions agents run one actor per partition: "
                                       "do not also set concurrency")
        if supervisor_strategy not in (None, "restart", "stop"):
            raise ImproperlyConfigured(
                f"supervisor_strategy={supervisor_strategy!r}: use 'restart' or 'stop'"
            )
        self.fun = fun
        self.app = app
        self.name = name or canonical_name(fun)
        _check_async(fun, self.name)
        self.errors = ErrorPolicy(app, self.name, on_error)
        self.concurrency = concurrency
        self.isolated_partitions = isolated_partitions
        self.help = help or (inspect.getdoc(fun) or "")
        self._supervisor_strategy = supervisor_strategy
        self._sinks = list(sink or [])
        self.channel = self._make_channel(channel, key_type, value_type, schema, kwargs)
        self._actors: list[asyncio.Task[None]] = []
        self._reply_hooks: list[ReplyHook] = []
        self.crashes = 0
        self.__doc__ = fun.__doc__
        self.__name__ = getattr(fun, "__name__", self.name)
        self.__wrapped__ = fun

    def _make_channel(
        self, channel: Any, key_type: Any, value_type: Any, schema: Any, kwargs: dict[str, Any]
    ) -> Channel[Any]:
        if isinstance(channel, Channel):
            return channel
        if channel is None:
            channel = f"{self.app.conf_id}-{self.name}"
            kwargs.setdefault("internal", True)
            kwargs.setdefault("has_prefix", True)  # group_by adds no agent prefix (Faust)
        if isinstance(channel, str):
            return self.app.topic(
                channel, key_type=key_type, value_type=value_type, schema=schema, **kwargs
            )
        raise ImproperlyConfigured(f"Agent channel must be a name or a channel, not {channel!r}")

    def __repr__(self) -> str:
        return f"<Agent {self.name}>"

    def __call__(self, stream: Any) -> Any:
        """Call the agent function directly (as Faust allows, e.g. in tests)."""
        return self.fun(stream)

    @property
    def supervisor_strategy(self) -> str:
        return self._supervisor_strategy or self.app.conf.agent_supervisor

    def add_sink(self, sink: Any) -> None:
        self._sinks.append(sink)

    # -- running -------------------------------------------------------------

    async def start(self) -> None:
        """Start the actors (each owns a task; ``stop`` cancels them)."""
        if self._actors:
            return
        self._start_on(self.channel)

    def _start_on(self, channel: Channel[Any]) -> EventBuffer:
        if self.isolated_partitions:
            return self._start_isolated(channel)
        buffer = channel.new_buffer()
        for index in range(self.concurrency):
            task = asyncio.ensure_future(self._supervise(channel, buffer, index))
            self._actors.append(task)
        return buffer

    def _start_isolated(self, channel: Channel[Any]) -> EventBuffer:
        if not isinstance(channel, Topic):
            raise ImproperlyConfigured("isolated_partitions needs an agent reading a topic")

        def start_actor(buffer: EventBuffer, partition: int) -> asyncio.Task[None]:
            task = asyncio.ensure_future(self._supervise(channel, buffer, partition))
            self._actors.append(task)
            task.add_done_callback(self._forget_actor)
            return task

        buffer = PartitionedBuffers(channel.maxsize, channel.topics, start_actor)
        self.app.conductor.subscribe(channel, buffer)
        return buffer

    def _forget_actor(self, task: asyncio.Task[None]) -> None:
        if task in self._actors:
            self._actors.remove(task)

    async def stop(self) -> None:
        actors, self._actors = self._actors, []
        for task in actors:
            task.cancel()
        if actors:
            await asyncio.gather(*actors, return_exceptions=True)

    async def _supervise(self, channel: Channel[Any], buffer: EventBuffer, index: int) -> None:
        backoff = 0.0
        while True:
            streams: list[Stream[Any]] = []
            _actor_streams.set(streams)
            _actor_agent.set(self.name)
            stream: Stream[Any] = Stream(channel, app=self.app, buffer=buffer,
                                         prefix=self.name)
            try:
                await self._execute(stream)
            except asyncio.CancelledError:
                raise
            except ImproperlyConfigured as exc:
                # Not a bad event: the agent cannot run at all, a restart changes nothing.
                logger.error("Agent %s cannot run: %s", self.name, exc)
                self._fatal(AgentError(f"Agent {self.name} cannot run: {exc}"))
                return
            except Exception as exc:
                self.crashes += 1
                current = _current_event.get()
                message = (current.message if current is not None else None) or stream._pending
                where = (
                    f" on {message.topic}[{message.partition}]@{message.offset}"
                    if message is not None
                    else ""
                )
                if message is None:
                    logger.exception("Agent %s crashed: %r", self.name, exc)
                    next_step, delay = "supervise", 0.0
                else:
                    # The event in hand: skipped, retried, dead-lettered or kept
                    # uncommitted (stop); streams it made (group_by) hand their
                    # buffers, and what is queued there, to the restarted actor.
                    next_step, delay = self.errors.handle(message, exc, streams, where)
                for made in streams:
                    made.release()
                if next_step == "stop" or (next_step == "supervise"
                                           and self.supervisor_strategy == "stop"):
                    self._fatal(AgentError(f"Agent {self.name} crashed{where}: {exc!r}"),
                                abort=next_step == "stop")
                    return
                # Crashing on an event: restart at once (a retry: after its delay).
                # Crashing before any event (a bug at start-up): back off
                # instead of spinning.
                backoff = (delay if message is not None
                           else min(max(backoff * 2, 0.5), MAX_BACKOFF_S))
                if backoff:
                    await asyncio.sleep(backoff)
                logger.info("Restarting agent %s actor %d", self.name, index)
            else:
                self._ended(index)
                return

    def _ended(self, index: int) -> None:
        """The actor's loop ended: nothing reads its stream any more."""
        if not self.app.started:
            logger.info("Agent %s actor %d returned", self.name, index)
            return
        reason = (f"Agent {self.name} actor {index} returned while the worker runs (a break "
                  "or return in its `async for`?): its stream would no longer be read. An "
                  "agent must keep iterating; filter events with `if ...: continue`")
        logger.error("%s. Stopping the worker; the event it was on is not committed.", reason)
        self._fatal(AgentError(reason), abort=True)

    def _fatal(self, error: AgentError, *, abort: bool = False) -> None:
        # Through the conductor: a revoke then stops waiting for the events the
        # agent holds (it will not finish them), so the worker stops at once.
        # ``abort``: the event is not to be committed, nor (exactly-once) its effects.
        if self.app.started:
            self.app.conductor.fail(error, abort=abort)
        else:
            self.app.on_fatal(error)

    async def _execute(self, stream: Stream[Any]) -> None:
        result = self.fun(stream)
        if inspect.isasyncgen(result):
            async for reply in result:
                await self._on_reply(stream, reply)
        elif inspect.isawaitable(result):
            await result
        else:
            raise ImproperlyConfigured(
                f"Agent {self.name} must be an async function or async generator"
            )

    async def _on_reply(self, stream: Stream[Any], reply: Any) -> None:
        message = stream._current.message
        if message is not None:
            request = reply_headers(message.headers)
            if request is not None:
                reply_to, correlation_id = request
                response = ReqRepResponse(key=message.decoded_key, value=reply,
                                          correlation_id=correlation_id)
                await self.app.send(reply_to, key=None, value=response)
            event = stream.current_event
            if self._reply_hooks and event is not None:
                for hook in self._reply_hooks:
                    await hook(event, reply)
        for sink in self._sinks:
            if isinstance(sink, (Agent, Channel)):
                await sink.send(value=reply)
            else:
                result = sink(reply)
                if inspect.isawaitable(result):
                    await result

    # -- sending to the agent ----------------------------------------------------

    async def send(
        self,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        *,
        key_serializer: Any = None,
        value_serializer: Any = None,
        reply_to: str | None = None,
        correlation_id: str | None = None,
        force: bool = False,
    ) -> asyncio.Future[RecordMetadata]:
        """Send a value to the agent's channel."""
        all_headers = list(headers.items() if isinstance(headers, dict) else headers or [])
        if reply_to is not None and correlation_id is not None:
            all_headers += [(REPLY_TO, reply_to.encode()),
                            (CORRELATION_ID, correlation_id.encode())]
        return await self.channel.send(
            key=key,
            value=value,
            partition=partition,
            timestamp=timestamp,
            headers=all_headers,
            key_serializer=key_serializer,
            value_serializer=value_serializer,
            force=force,
        )

    async def cast(self, value: Any = None, *, key: Any = None, partition: int | None = None,
                   timestamp: float | None = None, headers: Any = None) -> None:
        """Send without waiting for a reply."""
        await self.send(key, value, partition, timestamp, headers)

    async def ask(self, value: Any = None, *, key: Any = None, partition: int | None = None,
                  timestamp: float | None = None, headers: Any = None,
                  reply_to: str | None = None, correlation_id: str | None = None) -> Any:
        """Send a value and wait for the value the agent yields for it."""
        replies = self.app.replies
        cid, fut = await replies.new_request()
        try:
            await self.send(key, value, partition, timestamp, headers,
                            reply_to=reply_to or replies.topic_name, correlation_id=cid)
            return await fut
        finally:
            replies.forget(cid)

    async def ask_nowait(self, value: Any = None, *, key: Any = None,
                         partition: int | None = None, timestamp: float | None = None,
                         headers: Any = None, reply_to: str | None = None,
                         correlation_id: str | None = None, force: bool = False
                         ) -> asyncio.Future[Any]:
        """Send a value; return a future of the agent's reply, to await later.

        The request is sent when this returns; awaiting the future waits for the
        reply (cancel it to stop waiting).
        """
        replies = self.app.replies
        cid, fut = await replies.new_request()
        try:
            await self.send(key, value, partition, timestamp, headers,
                            reply_to=reply_to or replies.topic_name, correlation_id=cid)
        except BaseException:
            replies.forget(cid)
            raise
        fut.add_done_callback(lambda _: replies.forget(cid))
        return fut

    async def map(self, values: AsyncIterable[Any] | Iterable[Any], key: Any = None,
                  reply_to: str | None = None) -> AsyncIterator[Any]:
        """Ask for each value concurrently; yield the replies in order."""
        for reply in await self._gather((key, v) for v in await _collect(values)):
            yield reply

    async def kvmap(self, items: AsyncIterable[tuple[Any, Any]] | Iterable[tuple[Any, Any]],
                    reply_to: str | None = None) -> AsyncIterator[Any]:
        """Like ``map`` for ``(key, value)`` pairs."""
        for reply in await self._gather(await _collect(items)):
            yield reply

    async def join(self, values: AsyncIterable[Any] | Iterable[Any], key: Any = None,
                   reply_to: str | None = None) -> list[Any]:
        """Ask for each value concurrently; return the replies in order."""
        return await self._gather((key, v) for v in await _collect(values))

    async def kvjoin(self, items: AsyncIterable[tuple[Any, Any]] | Iterable[tuple[Any, Any]],
                     reply_to: str | None = None) -> list[Any]:
        return await self._gather(await _collect(items))

    async def _gather(self, items: Iterable[tuple[Any, Any]]) -> list[Any]:
        return list(await asyncio.gather(*(self.ask(v, key=k) for k, v in items)))

    # -- testing -------------------------------------------------------------------

    def test_context(self, channel: Channel[Any] | None = None, **kwargs: Any) -> AgentTestWrapper:
        """Run this agent over an in-memory channel (``async with agent.test_context()``)."""
        from .testing import AgentTestWrapper

        return AgentTestWrapper(self, channel or Channel(self.app, schema=self.channel.schema))

    def info(self) -> dict[str, Any]:
        topic = self.channel.label if isinstance(self.channel, Topic) else "<channel>"
        return {"name": self.name, "topic": topic, "concurrency": self.concurrency,
                "help": self.help.splitlines()[0] if self.help else ""}


def _check_async(fun: Callable[..., Any], name: str) -> None:
    """Refuse a plain ``def`` at declaration (it cannot iterate a stream with ``async for``)."""
    target = inspect.unwrap(fun)
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        return  # a callable object: checked when it runs
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        return
    raise ImproperlyConfigured(
        f"Agent {name} is a plain function: declare it `async def` (an agent iterates "
        "its stream with `async for`, and may `yield` replies)")


async def _collect(values: AsyncIterable[Any] | Iterable[Any]) -> list[Any]:
    if isinstance(values, AsyncIterable):
        return [v async for v in values]
    return list(values)
