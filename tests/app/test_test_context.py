"""Faust's ``agent.test_context()``."""

from __future__ import annotations

from typing import Any

import fluvial as faust

app = faust.App("test-context-app", broker="memory://test-context")
topic = app.topic("words", value_type=str)
counts = app.Table("word_counts", default=int)


@app.agent(topic)
async def shout(words: faust.Stream[str]) -> Any:
    async for word in words:
        counts[word] += 1
        yield word.upper()


async def test_put_and_results() -> None:
    async with shout.test_context() as agent:
        event = await agent.put("hello")
        assert agent.results[event.message.offset] == "HELLO"
        event = await agent.put("world")
        assert agent.results[event.message.offset] == "WORLD"
        await agent.put("hello")
        assert agent.results == {0: "HELLO", 1: "WORLD", 2: "HELLO"}
    assert counts["hello"] == 2
    assert counts["world"] == 1
