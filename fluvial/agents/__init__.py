"""Agents: async functions that process a stream, supervised, with replies."""

from .agent import Agent
from .testing import AgentTestWrapper

__all__ = ["Agent", "AgentTestWrapper"]
