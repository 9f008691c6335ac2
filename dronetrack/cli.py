"""The ``dronetrack`` command: run the whole system or one service, simulate a fleet, and
small admin tasks. Settings come from ``DRONETRACK_*`` variables; flags override a few."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path

from dronetrack import logs
from dronetrack.settings import Settings, SettingsError


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from dronetrack.supervisor import run

    if args.drones is not None:
        settings = settings.replace(sim_drones=args.drones)
    return asyncio.run(run(settings, simulate=not args.no_simulator))


def _service(name: str) -> int:
    import importlib

    importlib.import_module(f"{name}.__main__").main()
    return 0


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from dronetrack.simulator import simulate

    try:
        sent = asyncio.run(
            simulate(
                args.url or settings.sim_ingest_url,
                args.drones or settings.sim_drones,
                args.rate or settings.sim_rate_hz,
                token=settings.sim_token,
                duration_s=args.duration,
            )
        )
    except KeyboardInterrupt:
        return 0
    print(f"sent {sent} records")
    return 0


def _broker(args: argparse.Namespace, settings: Settings) -> int:
    from dronetrack.broker import EmbeddedBroker

    async def main() -> None:
        broker = EmbeddedBroker(settings, port=settings.embedded_broker_port)
        await broker.start()
        print(f"embedded broker on {broker.bootstrap_servers}; Ctrl-C stops it", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await broker.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    from dronetrack import schemas

    for name, schema in schemas.documents().items():
        text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        if args.out is None:
            print(f"// {name}\n{text}")
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / name).write_text(text)
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from dronetrack import tokens

    path = args.file or settings.ingest_tokens_file
    match args.token_command:
        case "revoke":
            # From stdin, so the token shows up in no shell history and no process list.
            if not tokens.revoke(path, sys.stdin.readline().strip()):
                print(f"dronetrack: that token is not in {path}", file=sys.stderr)
                return 1
            print(
                f"token revoked; running ingest services refuse it {_taken(settings)}.",
                file=sys.stderr,
            )
            return 0
    try:
        token = tokens.create(path, args.fleet)
    except ValueError as exc:
        print(f"dronetrack: {exc}", file=sys.stderr)
        return 2
    print(token)
    print(
        f"token for fleet {args.fleet!r}; only its hash was added to {path}. "
        "It is shown only now: store it with the fleet's ground software. "
        f"Running ingest services take it up {_taken(settings)}.",
        file=sys.stderr,
    )
    return 0


def _taken(settings: Settings) -> str:
    """When running ingest services see a change of the tokens file."""
    every = settings.ingest_tokens_reload_s
    return f"within {every:g} s" if every > 0 else "on restart"


def _bridge(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.__main__ import main as bridge

    changes = {
        "bridge_connect": ",".join(args.connect) if args.connect else None,
        "bridge_ingest_url": args.url,
        "bridge_token_file": args.token_file,
        "bridge_rate_hz": args.rate,
        "bridge_queue_path": args.queue,
        "bridge_drone_ids": ",".join(args.drone_id) if args.drone_id else None,
        "bridge_drone_prefix": args.prefix,
        "bridge_metrics_port": args.metrics_port,
    }
    try:
        bridge(settings.replace(**{k: v for k, v in changes.items() if v is not None}))
    except SettingsError as exc:
        print(f"dronetrack: {exc}", file=sys.stderr)
        return 2
    return 0


def _import_log(args: argparse.Namespace, settings: Settings) -> int:
    import tempfile

    from bridge.logimport import LogUnreadable, send_log

    changes = {"bridge_ingest_url": args.url, "bridge_token_file": args.token_file}
    settings = settings.replace(**{k: v for k, v in changes.items() if v is not None})
    try:
        with tempfile.TemporaryDirectory() as spool_dir:
            sent, skipped = asyncio.run(
                send_log(args.file, args.drone, settings, args.rate, Path(spool_dir))
            )
    except (LogUnreadable, SettingsError, OSError) as exc:
        print(f"dronetrack: {exc}", file=sys.stderr)
        return 2
    detail = ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
    print(f"sent {sent} records of {args.drone}" + (f"; not sent: {detail}" if detail else ""))
    return 1 if "refused" in skipped else 0


def _notify(args: argparse.Namespace, settings: Settings) -> int:
    from notifier.cli import notify_command

    return notify_command(args, settings)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dronetrack", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start everything on this machine (embedded by default)")
    run.add_argument("--drones", type=int, help="size of the simulated fleet")
    run.add_argument("--no-simulator", action="store_true", help="do not start the simulator")

    for name in ("ingest", "streams", "dashboard", "notifier"):
        sub.add_parser(name, help=f"run the {name} service alone")

    sim = sub.add_parser("simulate", help="fly a simulated fleet against an ingest service")
    sim.add_argument("--url", help="ingest base URL")
    sim.add_argument("--drones", type=int)
    sim.add_argument("--rate", type=float, help="reports per drone per second")
    sim.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")

    sub.add_parser("broker", help="run the embedded Kafka-protocol broker alone")

    bridge = sub.add_parser("bridge", help="bring drones that speak another protocol in")
    bridge_sub = bridge.add_subparsers(dest="bridge_command", required=True)
    mav = bridge_sub.add_parser("mavlink", help="MAVLink vehicles to ingest (docs/integrations.md)")
    mav.add_argument(
        "--connect",
        action="append",
        metavar="LINK",
        help="udp:HOST:PORT (listen), tcp:HOST:PORT or serial:DEVICE[:BAUD]; repeatable",
    )
    mav.add_argument("--url", help="ingest base URL")
    mav.add_argument("--token-file", type=Path, help="file holding the fleet's ingest token")
    mav.add_argument("--rate", type=float, help="records per drone per second at most")
    mav.add_argument("--queue", type=Path, help="the on-disk queue (SQLite file)")
    mav.add_argument(
        "--drone-id", action="append", metavar="SYSID=ID", help="name a system id; repeatable"
    )
    mav.add_argument("--prefix", help="drone id of other system ids: PREFIX + system id")
    mav.add_argument("--metrics-port", type=int, help="port of /metrics, /healthz, /readyz")

    imp = sub.add_parser("import-log", help="send a past flight from a .tlog or .ulg file")
    imp.add_argument("file", type=Path, help="a MAVLink .tlog or a PX4 .ulg flight log")
    imp.add_argument("--drone", required=True, help="the drone id the records are sent under")
    imp.add_argument("--url", help="ingest base URL")
    imp.add_argument("--token-file", type=Path, help="file holding the fleet's ingest token")
    imp.add_argument("--rate", type=float, default=5.0, help="records per second of flight")

    token = sub.add_parser("token", help="manage per-fleet ingest tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="make a token for FLEET and print it once")
    create.add_argument("fleet")
    create.add_argument("--file", type=Path, help="tokens file (default: the setting)")
    revoke = token_sub.add_parser("revoke", help="remove the token read from stdin")
    revoke.add_argument("--file", type=Path, help="tokens file (default: the setting)")

    schema = sub.add_parser("schema", help="print or write the published JSON Schemas")
    schema.add_argument("--out", type=Path, help="directory to write the schema files into")

    from dronetrack import admin

    admin.add_parsers(sub)
    from dronetrack import topicadmin

    topicadmin.add_parsers(sub)
    from notifier import cli as notify_cli

    notify_cli.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"dronetrack: {exc}", file=sys.stderr)
        return 2
    # dronetrack run prints URLs and credentials for a person: its own log goes with the others.
    run_log = settings.log_dir / "run.log" if args.command == "run" else None
    logs.configure(args.command, settings.log_level, run_log)
    if args.command in ("ingest", "streams", "dashboard", "notifier"):
        return _service(args.command)
    from dronetrack import admin, topicadmin

    handlers = {
        "run": _run,
        "simulate": _simulate,
        "broker": _broker,
        "bridge": _bridge,
        "import-log": _import_log,
        "schema": _schema,
        "token": _token,
        "db": admin.db_command,
        "user": admin.user_command,
        "kafka": topicadmin.kafka_command,
        "notify": _notify,
    }
    return handlers[args.command](args, settings)
