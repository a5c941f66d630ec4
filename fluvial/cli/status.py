"""``fluvial status``: the group at a glance, asked of a running worker's web server.

Any worker answers for the whole group (``/stats/group/``): workers with their
active and standby partitions, agents, lag, tables, recovery, rebalances and
errors. ``--url`` names the worker to ask (default: the app's
``canonical_url``, i.e. ``http://{web_host}:{web_port}``); ``--json`` prints
the answer as it came.
"""

from __future__ import annotations

import json
from typing import Any

import click
import httpx

from .base import State, render_table

__all__ = ["status"]


@click.command()
@click.option("--url", metavar="URL",
              help="A worker's web address (default: the app's canonical_url).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, help="Seconds to wait for the answer.")
@click.pass_obj
def status(state: State, url: str | None, timeout: float) -> None:
    """Show the workers of the app's group: partitions, agents, lag, tables, errors."""
    base = (url or state.get_app().conf.canonical_url).rstrip("/")
    try:
        response = httpx.get(f"{base}/stats/group/", timeout=timeout)
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"No worker answered at {base} ({type(exc).__name__}: {exc}). Is a worker "
            "running with its web server on? Give its address with --url (or set "
            "web_host/web_port as the worker has them).") from exc
    if response.status_code != 200:
        raise click.ClickException(
            f"{base}/stats/group/ answered HTTP {response.status_code}: {response.text[:300]}")
    group = response.json()
    if state.json:
        state.say(json.dumps(group, indent=2))
        return
    state.say(render_group(group))


def render_group(group: dict[str, Any]) -> str:
    """The group's figures as rich tables (text)."""
    workers = group["workers"]
    parts = [render_table(
        f"App {group['app']!r}: {len(workers)} worker(s)",
        ["worker", "active", "standby", "events/s", "events", "lag", "recovery",
         "rebalances", "errors"],
        [(w["url"], _partitions(w["active"]), ",".join(map(str, w["standby"])) or "-",
          f"{w['events_s']:,.0f}", f"{w['events_total']:,}", f"{sum(w['lag'].values()):,}",
          (f"{w['recovery']['left']:,} left" if w["recovery"] else "done"),
          w["rebalances"], w["decode_errors"] + w["send_errors"]
          + sum(a["crashes"] for a in w["agents"].values()))
         for w in workers])]
    agents = [(name, w["url"], f"{a['events_s']:,.0f}", f"{a['events']:,}",
               "-" if a["processing_ms"] is None else f"{a['processing_ms']:.3f}", a["crashes"])
              for w in workers for name, a in w["agents"].items()]
    if agents:
        parts.append(render_table("Agents", ["agent", "worker", "events/s", "events",
                                             "ms/event", "crashes"], agents))
    tables = [(name, w["url"], f"{t['keys']:,}", f"{t['changelog_records']:,}")
              for w in workers for name, t in w["tables"].items()]
    if tables:
        parts.append(render_table("Tables", ["table", "worker", "keys", "changelog records"],
                                  tables))
    lag = [(tp, w["url"], f"{n:,}") for w in workers for tp, n in w["lag"].items()]
    if lag:
        parts.append(render_table("Lag", ["partition", "worker", "lag"], lag))
    errors = [(w["url"], e["logger"], e["message"]) for w in workers for e in w["errors"]]
    if errors:
        parts.append(render_table("Recent errors", ["worker", "logger", "message"], errors))
    if group.get("unreachable"):
        parts.append("Unreachable: " + ", ".join(
            f"{url} ({why})" for url, why in group["unreachable"].items()))
    return "\n\n".join(parts)


def _partitions(active: dict[str, list[int]]) -> str:
    return "; ".join(f"{topic} {','.join(map(str, ps))}" for topic, ps in active.items()) or "-"
