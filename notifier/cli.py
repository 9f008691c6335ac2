"""``dronetrack notify add|list|test|remove|keygen``: a fleet's notification channels."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import typing

import aiohttp

from dronetrack.events import AlertEvent
from dronetrack.settings import Settings, SettingsError
from dronetrack.store import AlertType, Channel, Severity, StoreError, open_store
from notifier import deliver, secrets

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TYPES = typing.get_args(AlertType)
SEVERITIES = typing.get_args(Severity)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    notify = sub.add_parser("notify", help="manage a fleet's alert notification channels")
    notify_sub = notify.add_subparsers(dest="notify_command", required=True)
    add = notify_sub.add_parser(
        "add", help="add or replace a channel; a webhook's signing secret is printed once"
    )
    add.add_argument("fleet")
    add.add_argument("channel", help="channel id: a-z, 0-9, _ and -")
    where = add.add_mutually_exclusive_group(required=True)
    where.add_argument("--webhook", metavar="URL", help="POST alert events to this URL")
    where.add_argument("--email", metavar="ADDRESS", help="mail alert events to this address")
    add.add_argument("--slack", action="store_true", help="Slack-compatible webhook payload")
    add.add_argument(
        "--type",
        action="append",
        choices=TYPES,
        help="alert type to send (repeatable; default all)",
    )
    add.add_argument(
        "--severity", action="append", choices=SEVERITIES, help="severity to send (default all)"
    )
    add.add_argument(
        "--secret-stdin", action="store_true", help="read the webhook secret from stdin"
    )
    listing = notify_sub.add_parser("list", help="a fleet's channels (never their secrets)")
    listing.add_argument("fleet")
    test = notify_sub.add_parser("test", help="send a test message to a channel now")
    test.add_argument("fleet")
    test.add_argument("channel")
    remove = notify_sub.add_parser("remove", help="remove a channel")
    remove.add_argument("fleet")
    remove.add_argument("channel")
    notify_sub.add_parser("keygen", help="print a new DRONETRACK_NOTIFY_SECRET_KEY")


def _fail(message: str) -> int:
    print(f"dronetrack: {message}", file=sys.stderr)
    return 1


def notify_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.notify_command == "keygen":
        print(secrets.new_key())
        return 0
    if "channel" in args and not _ID.match(args.channel):
        return _fail(f"channel id {args.channel!r}: use 1-64 of a-z, 0-9, _ and -")
    try:
        return asyncio.run(_COMMANDS[args.notify_command](args, settings))
    except (StoreError, SettingsError) as exc:
        return _fail(str(exc))


async def _add(args: argparse.Namespace, settings: Settings) -> int:
    secret = ""
    if args.webhook:
        if not re.match(r"^https?://[^/\s]+", args.webhook):
            return _fail(f"--webhook {args.webhook!r}: an http:// or https:// URL is needed")
        secret = sys.stdin.readline().strip() if args.secret_stdin else secrets.new_secret()
        if len(secret) < 16:
            return _fail("a webhook secret needs at least 16 characters")
    elif not re.match(r"^[^@\s]+@[^@\s]+$", args.email):
        return _fail(f"--email {args.email!r} is not an e-mail address")
    channel = Channel(
        fleet=args.fleet,
        channel_id=args.channel,
        kind="webhook" if args.webhook else "email",
        target=args.webhook or args.email,
        created_at=time.time_ns() // 1_000_000,
        format="slack" if args.slack else "json",
        secret_box=secrets.seal(settings, secret) if secret else "",
        alert_types=sorted(set(args.type or ())),
        severities=sorted(set(args.severity or ())),
    )
    store = open_store(settings)
    await store.open()
    try:
        await store.put_channel(channel)
    finally:
        await store.close()
    print(json.dumps(channel.public()))
    if secret and not args.secret_stdin:
        print(f"signing secret (shown once, keep it with the receiver): {secret}")
    return 0


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings)
    await store.open()
    try:
        for channel in await store.channels(args.fleet):
            print(json.dumps(channel.public()))
    finally:
        await store.close()
    return 0


async def _find(settings: Settings, fleet: str, channel_id: str) -> Channel | None:
    store = open_store(settings)
    await store.open()
    try:
        return next((c for c in await store.channels(fleet) if c.channel_id == channel_id), None)
    finally:
        await store.close()


def test_event(fleet: str) -> AlertEvent:
    now = time.time_ns() // 1_000_000
    return AlertEvent(
        event="raised",
        alert_id=f"notify-test:battery_low:{now}",
        fleet=fleet,
        drone_id="notify-test",
        type="battery_low",
        severity="warning",
        raised_at=now,
        at=now,
        detail="a test message from `dronetrack notify test`",
    )


async def _test(args: argparse.Namespace, settings: Settings) -> int:
    channel = await _find(settings, args.fleet, args.channel)
    if channel is None:
        return _fail(f"fleet {args.fleet} has no channel {args.channel}")
    event = test_event(args.fleet)
    if channel.kind == "email":
        outcome = await deliver.send_email(settings, channel, event)
    else:
        secret = secrets.unseal(settings, channel.secret_box) if channel.secret_box else ""
        async with aiohttp.ClientSession() as http:
            outcome = await deliver.post_webhook(
                http, channel, secret, event, timeout_s=settings.notify_timeout_s, test=True
            )
    if outcome.result != "ok":
        return _fail(f"test message to {channel.target} not delivered: {outcome.reason}")
    print(f"test message delivered to {channel.target}")
    return 0


async def _remove(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings)
    await store.open()
    try:
        if not await store.remove_channel(args.fleet, args.channel):
            return _fail(f"fleet {args.fleet} has no channel {args.channel}")
    finally:
        await store.close()
    print(f"removed channel {args.channel} of fleet {args.fleet}")
    return 0


_COMMANDS = {"add": _add, "list": _list, "test": _test, "remove": _remove}
