"""Sensors (Faust's ``faust.sensors``): objects told about what the worker does.

A :class:`Sensor` has one method per kind of happening (Faust's names); a
:class:`Monitor` is a sensor that keeps Faust's counters. ``app.monitor`` is
the app's Monitor, and ``app.sensors.add(sensor)`` adds your own.

What the worker reports so far: commits (``on_commit_initiated`` /
``on_commit_completed``) and rebalances (``on_rebalance_start`` /
``on_rebalance_end``). The per-message, per-event, per-send and per-table
hooks exist with Faust's signatures, but the worker does not call them yet:
their counters stay at zero.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from typing import Any

__all__ = ["Monitor", "Sensor", "SensorDelegate", "TableState"]

#: How many latency samples a Monitor keeps (Faust's default).
MAX_SAMPLES = 100


class Sensor:
    """Base class: every hook does nothing; override the ones you need."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None: ...
    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any: ...
    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any,
                            state: Any = None) -> None: ...
    def on_message_out(self, tp: Any, offset: int, message: Any) -> None: ...
    def on_table_get(self, table: Any, key: Any) -> None: ...
    def on_table_set(self, table: Any, key: Any, value: Any) -> None: ...
    def on_table_del(self, table: Any, key: Any) -> None: ...
    def on_commit_initiated(self, consumer: Any) -> Any: ...
    def on_commit_completed(self, consumer: Any, state: Any) -> None: ...
    def on_send_initiated(self, producer: Any, topic: str, message: Any,
                          keysize: int, valsize: int) -> Any: ...
    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None: ...
    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None: ...
    def on_rebalance_start(self, app: Any) -> Any: ...
    def on_rebalance_end(self, app: Any, state: Any) -> None: ...


class TableState:
    """Counters of one table (Faust's ``TableState``)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.keys_retrieved = 0
        self.keys_updated = 0
        self.keys_deleted = 0

    def asdict(self) -> dict[str, int]:
        return {"keys_retrieved": self.keys_retrieved, "keys_updated": self.keys_updated,
                "keys_deleted": self.keys_deleted}


class Monitor(Sensor):
    """Faust's counters, kept by the hooks (see the module's note on which are called)."""

    def __init__(self, *, max_commit_latency_history: int = MAX_SAMPLES,
                 max_send_latency_history: int = MAX_SAMPLES) -> None:
        self.messages_received_total = 0
        self.messages_active = 0
        self.messages_sent = 0
        self.events_total = 0
        self.events_active = 0
        self.send_errors = 0
        self.commits_total = 0
        self.rebalances = 0
        self.commit_latency: deque[float] = deque(maxlen=max_commit_latency_history)
        self.send_latency: deque[float] = deque(maxlen=max_send_latency_history)
        self.rebalance_end_latency: deque[float] = deque(maxlen=MAX_SAMPLES)
        self.tables: dict[str, TableState] = {}

    def _table(self, table: Any) -> TableState:
        name = getattr(table, "name", str(table))
        state = self.tables.get(name)
        if state is None:
            state = self.tables[name] = TableState(table)
        return state

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        self.messages_received_total += 1
        self.messages_active += 1

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        self.messages_active -= 1

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        self.events_total += 1
        self.events_active += 1
        return time.monotonic()

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any,
                            state: Any = None) -> None:
        self.events_active -= 1

    def on_table_get(self, table: Any, key: Any) -> None:
        self._table(table).keys_retrieved += 1

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        self._table(table).keys_updated += 1

    def on_table_del(self, table: Any, key: Any) -> None:
        self._table(table).keys_deleted += 1

    def on_commit_initiated(self, consumer: Any) -> Any:
        return time.monotonic()

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        self.commits_total += 1
        self.commit_latency.append(time.monotonic() - state)

    def on_send_initiated(self, producer: Any, topic: str, message: Any,
                          keysize: int, valsize: int) -> Any:
        self.messages_sent += 1
        return time.monotonic()

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        self.send_latency.append(time.monotonic() - state)

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        self.send_errors += 1

    def on_rebalance_start(self, app: Any) -> Any:
        self.rebalances += 1
        return time.monotonic()

    def on_rebalance_end(self, app: Any, state: Any) -> None:
        self.rebalance_end_latency.append(time.monotonic() - state)

    def asdict(self) -> dict[str, Any]:
        """The counters as plain data."""
        return {
            "messages_received_total": self.messages_received_total,
            "messages_active": self.messages_active,
            "messages_sent": self.messages_sent,
            "events_total": self.events_total,
            "events_active": self.events_active,
            "send_errors": self.send_errors,
            "commits_total": self.commits_total,
            "rebalances": self.rebalances,
            "commit_latency": list(self.commit_latency),
            "send_latency": list(self.send_latency),
            "rebalance_end_latency": list(self.rebalance_end_latency),
            "tables": {name: state.asdict() for name, state in self.tables.items()},
        }


class SensorDelegate:
    """``app.sensors``: the app's sensors (its Monitor first); a hook call reaches each."""

    def __init__(self, monitor: Monitor) -> None:
        self._sensors: list[Sensor] = [monitor]

    def add(self, sensor: Sensor) -> None:
        self._sensors.append(sensor)

    def remove(self, sensor: Sensor) -> None:
        self._sensors.remove(sensor)

    def __iter__(self) -> Iterator[Sensor]:
        return iter(self._sensors)

    def on_commit_initiated(self, consumer: Any) -> dict[Sensor, Any]:
        return {s: s.on_commit_initiated(consumer) for s in self._sensors}

    def on_commit_completed(self, consumer: Any, state: dict[Sensor, Any]) -> None:
        for sensor in self._sensors:
            sensor.on_commit_completed(consumer, state.get(sensor))

    def on_rebalance_start(self, app: Any) -> dict[Sensor, Any]:
        return {s: s.on_rebalance_start(app) for s in self._sensors}

    def on_rebalance_end(self, app: Any, state: dict[Sensor, Any]) -> None:
        for sensor in self._sensors:
            sensor.on_rebalance_end(app, state.get(sensor))
