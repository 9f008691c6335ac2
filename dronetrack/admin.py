"""Admin commands: ``dronetrack db ...`` (schema) and ``dronetrack user ...`` (dashboard users).

Both work on whichever store the settings select (``DRONETRACK_STORE``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from dronetrack.passwords import WeakPassword, hash_password
from dronetrack.settings import Settings, SettingsError
from dronetrack.store import Store, StoreError, User, migrations, open_store

T = TypeVar("T")
FLEET = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="create the keyspace, migrate the schema, show its version")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    force = argparse.ArgumentParser(add_help=False)
    force.add_argument(
        "--force",
        action="store_true",
        help="create the keyspace even with a replication factor above the live nodes",
    )
    db_sub.add_parser(
        "create-keyspace", parents=[force], help="create the Cassandra keyspace (idempotent)"
    )
    db_sub.add_parser(
        "migrate",
        parents=[force],
        help="create the keyspace if missing, apply pending migrations (idempotent)",
    )
    db_sub.add_parser("version", help="print the applied and the latest schema version")

    user = sub.add_parser("user", help="manage dashboard users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    create = user_sub.add_parser(
        "create", help="create a user; the password is read from stdin (prompted on a terminal)"
    )
    create.add_argument("name")
    create.add_argument(
        "--fleet", action="append", required=True, help="a fleet the user may see (repeatable)"
    )
    create.add_argument("--replace", action="store_true", help="overwrite an existing user")
    disable = user_sub.add_parser("disable", help="refuse a user's logins from now on")
    disable.add_argument("name")
    user_sub.add_parser("list", help="list users and their fleets")


def _fail(message: str) -> int:
    print(f"dronetrack: {message}", file=sys.stderr)
    return 1


def db_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if settings.store == "sqlite":
            return _sqlite_db(args.db_command, settings)
        if settings.store == "cassandra":
            return _cassandra_db(args.db_command, settings, force=getattr(args, "force", False))
        return _fail(f"DRONETRACK_STORE={settings.store!r}: expected 'sqlite' or 'cassandra'")
    except (StoreError, SettingsError) as exc:
        return _fail(str(exc))


def _sqlite_db(command: str, settings: Settings) -> int:
    from dronetrack.store import sqlite

    latest = migrations.latest_version("sqlite")
    if command == "create-keyspace":
        print("the SQLite store has no keyspace: `dronetrack db migrate` creates the file")
        return 0
    path = settings.sqlite_path
    if command == "version" and not path.exists():
        print(f"sqlite {path}: version 0 of {latest} (no database yet)")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        if command == "migrate":
            before, after = sqlite.migrate(db)
            print(f"sqlite {path}: schema version {before} -> {after}")
        else:
            print(f"sqlite {path}: version {sqlite.schema_version(db)} of {latest}")
    finally:
        db.close()
    return 0


def _cassandra_db(command: str, settings: Settings, *, force: bool) -> int:
    from cassandra import (
        ConsistencyLevel,
        OperationTimedOut,
        ReadTimeout,
        Unavailable,
        WriteTimeout,
    )

    from dronetrack.store import cassandra_schema

    latest = migrations.latest_version("cassandra")
    keyspace = settings.cassandra_keyspace
    try:
        if command == "create-keyspace":
            created = cassandra_schema.create_keyspace(settings, force=force)
            print(created or f"cassandra keyspace {keyspace} exists; left as it is")
        elif command == "migrate":
            before, after = cassandra_schema.migrate(settings, force=force)
            print(f"cassandra keyspace {keyspace}: schema version {before} -> {after}")
        else:
            applied = cassandra_schema.version(settings)
            print(f"cassandra keyspace {keyspace}: version {applied} of {latest}")
    except Unavailable as exc:
        level = ConsistencyLevel.value_to_name.get(exc.consistency, exc.consistency)
        return _fail(
            f"Cassandra could not reach enough replicas: {level} needs"
            f" {exc.required_replicas} live replicas, {exc.alive_replicas} alive. Start the"
            " missing nodes (nodetool status), or lower the replication of keyspace"
            f" {keyspace!r} to the nodes there are (ALTER KEYSPACE)"
        )
    except (ReadTimeout, WriteTimeout, OperationTimedOut) as exc:
        return _fail(
            f"Cassandra did not answer in time ({type(exc).__name__}: {exc}). The nodes may be"
            " overloaded or starting: check nodetool status and run the command again (it is"
            " idempotent), or raise DRONETRACK_CASSANDRA_REQUEST_TIMEOUT_S"
        )
    return 0


def _with_store(settings: Settings, job: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = open_store(settings)
        await store.open()
        try:
            return await job(store)
        finally:
            await store.close()

    return asyncio.run(run())


def read_password() -> str:
    """From a terminal: prompted twice. Otherwise: the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise WeakPassword("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def user_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.user_command == "create":
            return _create_user(args, settings)
        if args.user_command == "disable":
            if not _with_store(settings, lambda s: s.disable_user(args.name)):
                return _fail(f"no user {args.name!r}")
            print(f"user {args.name} disabled")
            return 0
        for user in _with_store(settings, lambda s: s.list_users()):
            state = "disabled" if user.disabled else "active"
            print(f"{user.name}\t{state}\t{','.join(user.fleets)}")
        return 0
    except (StoreError, SettingsError) as exc:
        return _fail(str(exc))


def _create_user(args: argparse.Namespace, settings: Settings) -> int:
    bad = [f for f in args.fleet if not FLEET.match(f)]
    if bad:
        return _fail(f"fleet names are 1-64 characters of [A-Za-z0-9._-]: {bad}")
    if not FLEET.match(args.name):
        return _fail("user names are 1-64 characters of [A-Za-z0-9._-]")
    try:
        user = User(
            name=args.name,
            password_hash=hash_password(read_password()),
            fleets=sorted(set(args.fleet)),
        )
    except WeakPassword as exc:
        return _fail(str(exc))

    async def put(store: Store) -> bool:
        if not args.replace and await store.get_user(user.name) is not None:
            return False
        await store.put_user(user)
        return True

    if not _with_store(settings, put):
        return _fail(f"user {args.name!r} exists: add --replace to overwrite it")
    print(f"user {user.name} created for fleets {', '.join(user.fleets)}")
    return 0
