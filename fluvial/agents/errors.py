"""What happens to the event an agent raised on: the processing error policy.

``on_error=`` per agent, or the app's ``processing_error_policy``:

- ``skip`` (default): the event counts as processed; the supervisor restarts
  the actor (or stops the worker with ``supervisor_strategy='stop'``).
- ``retry``: the event goes back to the front of its stream and the actor
  restarts after a backoff (0.1 s, doubling); after
  ``processing_error_retries`` failed retries the worker stops on it.
  Exactly-once, the open transaction (which holds the failed attempt's
  effects) is aborted instead and the worker re-joins from the committed
  offsets, so the retry starts from a clean state.
- ``dead_letter``: the input message (its raw key, value, headers and
  timestamp) goes to the dead-letter topic with the traceback in the
  ``fluvial-error`` header; then as ``skip``.
- ``stop``: the worker stops, and nothing is committed past the event.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any

from ..exceptions import ImproperlyConfigured
from ..runtime.deadletter import dead_letter
from ..settings import PROCESSING_ERROR_POLICIES

if TYPE_CHECKING:
    from ..app import App
    from ..streams import Stream
    from ..types import Message

__all__ = ["PROCESSING_ERROR_POLICIES", "ErrorPolicy"]

logger = logging.getLogger(__name__)


#: First wait before a retry; it doubles with each retry of the same event.
RETRY_BACKOFF_S = 0.1
MAX_RETRY_BACKOFF_S = 30.0


def check_policy(policy: str | None, what: str) -> str | None:
    if policy is not None and policy not in PROCESSING_ERROR_POLICIES:
        raise ImproperlyConfigured(
            f"{what}={policy!r}: use one of {', '.join(map(repr, PROCESSING_ERROR_POLICIES))}")
    return policy


class ErrorPolicy:
    """One agent's processing error policy, and the retries of its events under way."""

    def __init__(self, app: App, agent_name: str, on_error: str | None) -> None:
        self.app = app
        self.agent_name = agent_name
        self._on_error = check_policy(on_error, "on_error")
        #: (topic, partition, offset) -> (message, failed attempts), for ``retry``.
        self._attempts: dict[tuple[str, int, int], tuple[Message, int]] = {}

    @property
    def policy(self) -> str:
        if self._on_error is not None:
            return self._on_error
        return self.app.conf.processing_error_policy

    @property
    def retries(self) -> int:
        return self.app.conf.processing_error_retries

    def handle(self, message: Message, exc: BaseException, streams: list[Stream[Any]],
               where: str) -> tuple[str, float]:
        """Settle the events in hand after the agent raised on the event of ``message``.

        Returns what the supervisor does next — ``'restart'`` (after the
        returned delay), ``'supervise'`` (its own strategy) or ``'stop'`` —
        and the delay.
        """
        policy = self.policy
        name = self.agent_name
        if policy == "retry":
            attempt = self._failed_attempt(message)
            if attempt <= self.retries:
                delay = min(RETRY_BACKOFF_S * 2 ** (attempt - 1), MAX_RETRY_BACKOFF_S)
                if self.app.conf.exactly_once:
                    # The open transaction holds what the failed attempt did: it is
                    # aborted, and the worker re-joins from the committed offsets.
                    self.app.conductor.abort_transaction(
                        f"agent {name} retries the event{where}")
                    delay = 0.0  # the re-join waits
                else:
                    _put_back(message, streams)
                logger.error("Agent %s crashed%s: %r. Retry %d of %d in %.1f s "
                             "(on_error=retry).", name, where, exc, attempt, self.retries, delay,
                             exc_info=exc)
                return "restart", delay
            self._attempts.pop(_position(message), None)
            logger.error("Agent %s crashed%s: %r, and after %d retries still does. Stopping "
                         "without committing it (on_error=retry).", name, where, exc,
                         self.retries, exc_info=exc)
            _settle_others(message, streams)
            return "stop", 0.0
        if policy == "stop":
            logger.error("Agent %s crashed%s: %r. Stopping without committing it "
                         "(on_error=stop).", name, where, exc, exc_info=exc)
            _settle_others(message, streams)
            return "stop", 0.0
        if policy == "dead_letter":
            error = "".join(traceback.format_exception(exc))
            failed = dead_letter(self.app, message, f"{exc!r}\n{error}",
                                 [("fluvial-agent", name.encode())])
            if failed is not None:
                logger.error("Agent %s crashed%s: %r. It cannot be sent to the dead-letter "
                             "topic %r either (%s): stopping without committing it.", name,
                             where, exc, self.app.conf.dead_letter_topic_name, failed,
                             exc_info=exc)
                _settle_others(message, streams)
                return "stop", 0.0
            logger.error("Agent %s crashed%s: %r. Sent to dead-letter topic %r "
                         "(on_error=dead_letter).", name, where, exc,
                         self.app.conf.dead_letter_topic_name, exc_info=exc)
        else:
            logger.error("Agent %s crashed%s: %r. The event is skipped (on_error=skip).",
                         name, where, exc, exc_info=exc)
        for made in streams:
            made.ack_pending()
        return "supervise", 0.0

    def _failed_attempt(self, message: Message) -> int:
        # Forget events retried until they went through (acknowledged since). By
        # position: exactly-once, a retry reads the event again (a new message).
        for key in [k for k, (m, _) in self._attempts.items() if m.acked]:
            del self._attempts[key]
        key = _position(message)
        _, attempts = self._attempts.get(key, (message, 0))
        self._attempts[key] = (message, attempts + 1)
        return attempts + 1


def _position(message: Message) -> tuple[str, int, int]:
    return (message.topic, message.partition, message.offset)


def _holder(message: Message, streams: list[Stream[Any]]) -> Stream[Any] | None:
    for made in streams:
        if made.holds(message):
            return made
    return None


def _settle_others(message: Message, streams: list[Stream[Any]]) -> Stream[Any] | None:
    """Acknowledge what the actor's other streams hold (a ``group_by`` source's
    forwarded events); the stream holding ``message`` keeps it unacknowledged."""
    holder = _holder(message, streams)
    for made in streams:
        if made is not holder:
            made.ack_pending()
    return holder


def _put_back(message: Message, streams: list[Stream[Any]]) -> None:
    """Return ``message`` (its ``take`` batch) to the front of its stream's buffer."""
    holder = _settle_others(message, streams)
    if holder is None:
        return
    holder.buffer.put_back(holder.take_back())
