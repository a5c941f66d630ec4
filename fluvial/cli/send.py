"""``fluvial send``: send messages to a topic or an ``@agent``."""

from __future__ import annotations

import asyncio
import difflib
import json
import random
from typing import TYPE_CHECKING, Any

import click

from .base import State
from .custom import run_with_app
from .models import find_model

if TYPE_CHECKING:
    from ..agents import Agent
    from ..app import App
    from ..channels import Channel
    from ..types import RecordMetadata

__all__ = ["find_agent", "send"]

#: Codecs that take text or bytes as they are; every other codec gets decoded JSON.
_TEXT_CODECS = frozenset({"raw", "binary"})


@click.command()
@click.argument("target", metavar="TOPIC|@AGENT")
@click.argument("value", required=False)
@click.option("-k", "--key", help="The key (JSON, or text).")
@click.option("-K", "--key-type", help="Name of the model to decode the key into.")
@click.option("--key-serializer", help="Override the key serializer (json, raw, ...).")
@click.option("-V", "--value-type", help="Name of the model to decode the value into.")
@click.option("--value-serializer", help="Override the value serializer (json, raw, ...).")
@click.option("-p", "--partition", type=click.IntRange(min=0), help="Send to this partition.")
@click.option("-r", "--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Send the message this many times.")
@click.option("--min-latency", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Minimum delay between messages (seconds).")
@click.option("--max-latency", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Maximum delay between messages (seconds).")
@click.option("--raw", is_flag=True, default=False,
              help="Send the key and value text as they are (UTF-8 bytes), unchecked.")
@click.option("--create", is_flag=True, default=False,
              help="Create the topic if it does not exist (with the app's topic settings).")
@click.pass_obj
def send(state: State, target: str, value: str | None, key: str | None, key_type: str | None,
         key_serializer: str | None, value_type: str | None, value_serializer: str | None,
         partition: int | None, repeat: int, min_latency: float, max_latency: float,
         raw: bool, create: bool) -> None:
    """Send a message to a topic, or to an agent (@name).

    VALUE is JSON (decoded, then encoded with the topic's serializer); text
    that is not JSON is sent as a string. The message must decode as the
    topic's key and value types, as a worker will decode it (--raw sends the
    text unchecked). Prints where each message landed.
    """
    if max_latency < min_latency:
        raise click.BadParameter("must be >= --min-latency", param_hint="--max-latency")
    app = state.get_app()
    state.setup_logging()
    channel = _target_channel(app, target)
    if raw:
        k: Any = None if key is None else key.encode()
        v: Any = None if value is None else value.encode()
    else:
        k = _to_object(app, state, key, key_type, key_serializer,
                       getattr(channel, "key_serializer", None), app.conf.key_serializer, "key")
        v = _to_object(app, state, value, value_type, value_serializer,
                       getattr(channel, "value_serializer", None), app.conf.value_serializer,
                       "value")
        _check_decodes(app, channel, k, v, key_serializer, value_serializer)
    if app.conf.broker.startswith("memory://"):
        state.say(f"Warning: {app.conf.broker} is fluvial's in-process broker: the message "
                  "lives in this process only and is gone when `send` exits (the offset "
                  "printed is this process's). Give a Kafka broker: --broker "
                  "kafka://host:port", err=True)

    async def send_all() -> None:
        await app.producer_ready()
        await _declare_if_missing(app, channel, create=create)
        for i in range(repeat):
            if i and max_latency:
                await asyncio.sleep(random.uniform(min_latency, max_latency))
            fut = await channel.send(key=k, value=v, partition=partition,
                                     key_serializer=key_serializer,
                                     value_serializer=value_serializer)
            _report(state, await fut)
        await app.producer.flush()

    run_with_app(app, send_all())


async def _declare_if_missing(app: App, channel: Channel[Any], *, create: bool) -> None:
    """Create a missing target topic with ``--create`` (and on memory://, where
    every topic starts missing); refuse to send to it otherwise: a typo in a
    topic name would make a topic nobody reads.

    An existing topic is left alone, whatever its partition count: sending
    to it needs no co-partitioning check.
    """
    from ..channels import Topic

    if not isinstance(channel, Topic) or not app.conf.topic_allow_declare:
        return
    counts = await app.transport.partition_counts(channel.topics)
    missing = sorted(name for name, count in counts.items() if count is None)
    if not missing:
        return
    if not create and not app.conf.broker.startswith("memory://"):
        declared = {name for c in app.topics if isinstance(c, Topic) for name in c.topics}
        close = difflib.get_close_matches(missing[0], sorted(declared - set(missing)), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise click.UsageError(
            f"Topic {missing[0]!r} does not exist on {app.conf.broker}.{hint} Add --create "
            f"to create it ({channel.partitions or app.conf.topic_partitions} partitions).")
    await channel.declare()


def _report(state: State, meta: RecordMetadata) -> None:
    if state.json:
        state.say(json.dumps(meta._asdict()))
    else:
        state.say(f"sent to {meta.topic} partition {meta.partition} offset {meta.offset}")


def _target_channel(app: App, target: str) -> Channel[Any]:
    from ..channels import Topic

    if target.startswith("@"):
        agent = find_agent(app, target[1:])
        if not isinstance(agent.channel, Topic):
            raise click.UsageError(
                f"Agent {agent.name!r} reads an in-memory channel: only agents reading a "
                "topic can be sent to from the command line"
            )
        return agent.channel
    if not target:
        raise click.UsageError("Give a topic name or @agent")
    for channel in app.topics:
        if isinstance(channel, Topic) and channel.topics == (target,):
            return channel
    return app.topic(target)


def find_agent(app: App, name: str) -> Agent:
    """The agent called ``name``, or whose name ends with ``.name`` (the function's name)."""
    if name in app.agents:
        return app.agents[name]
    matches = [a for n, a in app.agents.items() if n.endswith("." + name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise click.UsageError(
            f"@{name} is ambiguous: {', '.join('@' + a.name for a in matches)}"
        )
    close = difflib.get_close_matches(name, list(app.agents), n=3)
    hint = f" Did you mean {', '.join('@' + c for c in close)}?" if close else ""
    raise click.UsageError(f"No agent named {name!r}.{hint} Run `fluvial agents` for a list.")


def _check_decodes(app: App, channel: Channel[Any], key: Any, value: Any,
                   key_serializer: str | None, value_serializer: str | None) -> None:
    """Refuse a key or value that a worker could not decode: encode it as it
    will be sent, then decode it with the topic's schema."""
    from ..exceptions import FluvialError

    schema = channel.schema
    conf = app.conf
    checks = (
        ("key", key,
         schema.key_encoder(conf.key_serializer, serializer=key_serializer, channel=channel),
         schema.key_decoder(conf.key_serializer, serializer=key_serializer, channel=channel),
         schema.key_type),
        ("value", value,
         schema.value_encoder(conf.value_serializer, serializer=value_serializer,
                              channel=channel),
         schema.value_decoder(conf.value_serializer, serializer=value_serializer,
                              channel=channel),
         schema.value_type),
    )
    for what, obj, encode, decode, typ in checks:
        if obj is None:
            continue
        try:
            decode(encode(obj))
        except FluvialError as exc:
            expected = getattr(typ, "__name__", None) or repr(typ)
            raise click.BadParameter(
                f"{obj!r} is not a {what} a worker of {channel.label} can read "
                f"({what}_type {expected}): {exc}. Fix it, or send it unchecked with --raw",
                param_hint=f"--{what}" if what == "key" else "VALUE") from exc


def _to_object(app: App, state: State, text: str | None, type_name: str | None,
               serializer: Any, channel_serializer: Any, default_serializer: Any,
               what: str) -> Any:
    """The key or value to send, from its command-line text."""
    if text is None:
        return None
    if type_name:
        model = find_model(type_name, origin=state.origin)
        try:
            return model.loads(text.encode(), serializer=serializer)
        except Exception as exc:  # any codec or validation error: the input is wrong
            raise click.BadParameter(
                f"cannot decode {text!r} as {type_name}: {exc}", param_hint=f"--{what}"
            ) from exc
    codec = serializer or channel_serializer or default_serializer
    if isinstance(codec, str) and codec in _TEXT_CODECS:
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        if text.lstrip()[:1] in ("{", "[", '"'):
            # Meant as JSON, and mistyped: sent as a string it would be data nobody expects.
            raise click.BadParameter(
                f"{text!r} is not valid JSON ({exc}). Fix it, or send the text as it is "
                "with --raw", param_hint=f"--{what}" if what == "key" else "VALUE") from exc
        return text
