"""Every error fluvial raises derives from :class:`FluvialError`."""

from __future__ import annotations


class FluvialError(Exception):
    """Root of all fluvial errors."""


class ImproperlyConfigured(FluvialError):
    """A setting or argument has a value fluvial cannot work with."""


class TransportError(FluvialError):
    """The broker could not be reached or refused an operation."""


class BrokerUnreachable(TransportError):
    """No broker answered at the configured address."""


class AuthenticationFailed(TransportError):
    """The broker refused the credentials (``broker_credentials``)."""


class PartitionCountMismatch(ImproperlyConfigured):
    """Topics that must be co-partitioned have different partition counts."""


class ProducerError(TransportError):
    """A message could not be delivered to the broker."""


class CommitError(TransportError):
    """Offsets could not be committed."""


class GroupMembershipLost(CommitError):
    """A commit was refused because the group moved on without this worker (its
    session timed out, or a rebalance is under way): the partitions' new owners
    process the uncommitted events again."""


class ConsumerFailed(TransportError):
    """The group consumer failed fatally (librdkafka cannot go on with it, e.g. its
    static membership was fenced): the worker drops what it did not commit and
    re-joins the group with a new consumer."""


class ProducerFenced(TransportError):
    """Under exactly-once, this worker's transaction was fenced and not committed.

    Either a newer producer took over the worker's ``transactional.id``, or the
    consumer group moved on without this worker (its generation is stale: a
    zombie). Nothing of the transaction is visible; the worker discards its
    uncommitted state and re-joins the group.
    """


class TransactionAborted(ProducerFenced):
    """Under exactly-once, the transaction hit an error that only an abort clears
    (its messages timed out — a worker frozen past ``transaction.timeout.ms`` —
    or the coordinator aborted it). Handled as a fencing: the worker aborts,
    discards its uncommitted state and re-joins; its producer stays valid.
    """


class TransactionsUnavailable(TransportError):
    """``processing_guarantee='exactly_once'`` but the broker cannot run transactions."""


class SerializationError(FluvialError):
    """A key or value could not be encoded or decoded."""


class KeyDecodeError(SerializationError):
    """A message key could not be decoded with the topic's key type."""


class ValueDecodeError(SerializationError):
    """A message value could not be decoded with the topic's value type."""


class DecoderUnavailable(FluvialError):
    """A decoder cannot work now for a reason outside the message (the schema
    registry is unreachable): the worker stops on the message without committing
    it, rather than treating it as undecodable."""


class ModelDecodeError(SerializationError, ValueError):
    """A payload does not decode into a model (missing fields, not an object, ...);
    a ``ValueError`` too, as the underlying decoders' errors are."""


class ValidationError(SerializationError, ValueError):
    """A model field failed validation; ``field`` is its FieldDescriptor (as in Faust)."""

    def __init__(self, reason: str, *, field: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.reason!r} field={self.field!r}>"


class FieldValidationError(ValidationError):
    """A Record field failed validation."""


class ModelError(FluvialError, RuntimeError):
    """A model class defined in a way Faust's models forbid (e.g. overriding ``asdict``)."""


class AbstractModelError(ModelError, NotImplementedError, TypeError):
    """An abstract model cannot be instantiated (NotImplementedError as in Faust, and TypeError)."""


class ImproperlyConfiguredCodec(ImproperlyConfigured):
    """A codec name is unknown, or a codec cannot be composed as asked."""


class AgentError(FluvialError):
    """An agent's actor failed and the supervisor strategy stops the worker."""


class TableError(FluvialError):
    """A table was used in a way that cannot be honoured."""


class PartitionNotOwned(TableError):
    """A table write to a partition this worker does not own (any more)."""


class WorkerStopped(FluvialError):
    """The worker stopped because of an unrecoverable error (see __cause__)."""


class SecurityError(FluvialError, RuntimeError):
    """Protected data (a ``Sensitive`` or ``Personal`` field) used where it may not be."""


class AlreadyConfiguredWarning(FluvialError, UserWarning):
    """A setting changed after the app's configuration was read (a warning, as in Faust)."""


# Faust compatibility aliases.
FaustError = FluvialError


class RouterError(FluvialError, LookupError):
    """``app.router`` cannot tell which worker holds a key (no owner known yet)."""


class GroupRebalancing(TransportError):
    """The consumer group is between two generations: its assignment is not settled."""


class SameNode(FluvialError):
    """``app.router.route_req``: the key is held by this worker, so serve it here."""
