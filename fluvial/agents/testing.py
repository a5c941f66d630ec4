"""``agent.test_context()``: run an agent over an in-memory channel, Faust style."""

from __future__ import annotations

import asyncio
import itertools
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..buffers import EventBuffer
from ..events import Event
from ..types import Message

if TYPE_CHECKING:
    from ..channels import Channel
    from .agent import Agent

__all__ = ["AgentTestWrapper"]


class AgentTestWrapper:
    """The agent, fed by ``put``; what it yields is in ``results`` by offset.

    >>> # async with my_agent.test_context() as agent:
    >>> #     event = await agent.put('hello')
    >>> #     assert agent.results[event.message.offset] == 'HELLO'
    """

    def __init__(self, agent: Agent, channel: Channel[Any], timeout: float = 10.0) -> None:
        self.agent = agent
        self.channel = channel
        self.results: dict[int, Any] = {}
        self.timeout = timeout
        self._offsets = itertools.count()
        self._buffer: EventBuffer | None = None
        self._actors: list[asyncio.Task[None]] = []
        self.processed_offset = -1
        self.sent_offset = -1
        self._changed = asyncio.Event()

    async def __aenter__(self) -> AgentTestWrapper:
        agent = self.agent
        agent._reply_hooks.append(self._on_reply)
        self._buffer = self.channel.new_buffer()
        for index in range(agent.concurrency):
            self._actors.append(
                asyncio.ensure_future(agent._supervise(self.channel, self._buffer, index))
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._actors:
            task.cancel()
        await asyncio.gather(*self._actors, return_exceptions=True)
        self._actors.clear()
        if self._on_reply in self.agent._reply_hooks:
            self.agent._reply_hooks.remove(self._on_reply)

    async def _on_reply(self, event: Event, reply: Any) -> None:
        self.results[event.message.offset] = reply
        self._changed.set()

    async def put(
        self,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        *,
        wait: bool = True,
        **kwargs: Any,
    ) -> Event:
        """Deliver one value; with ``wait`` return once the agent has processed it."""
        app = self.agent.app
        offset = next(self._offsets)
        hdrs = list(headers.items() if isinstance(headers, dict) else headers or [])
        message = Message(
            self.channel.label,
            partition or 0,
            offset,
            None,
            None,
            app.clock.time() if timestamp is None else timestamp,
            hdrs,
        )
        event = Event(app, key, value, hdrs, message)
        self.sent_offset = offset
        await self.channel.put(event)
        if wait:
            await self._wait_processed(event)
        return event

    async def _wait_processed(self, event: Event) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        message = event.message
        while not message.acked:
            if any(task.done() for task in self._actors):
                for task in self._actors:
                    if task.done() and not task.cancelled() and task.exception():
                        raise task.exception()  # type: ignore[misc]
                break
            if loop.time() > deadline:
                raise TimeoutError(f"Agent {self.agent.name} did not process offset "
                                   f"{message.offset} within {self.timeout}s")
            await asyncio.sleep(0 if loop.time() + self.timeout - deadline < 0.1 else 0.001)
        self.processed_offset = max(self.processed_offset, message.offset)
