"""Real parts for integration tests: one embedded broker and one stream worker per session."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from dronetrack import processes, tokens
from dronetrack.broker import EmbeddedBroker, free_port
from dronetrack.settings import Settings
from tests.dashboard_env import dashboard  # noqa: F401 - a fixture for the dashboard tests
from tests.integration import topic_contract

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 60.0, what: str = "condition"
) -> T:
    """Await until ``probe`` returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dronetrack")


@pytest.fixture(scope="session")
def broker(session_dir: Path) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(Settings.from_env({}), log_path=session_dir / "broker.log")
    asyncio.run(b.start())
    try:
        yield b
        # Everything the session's tests made the services write, read by librdkafka as
        # analysts' tools read it, is valid by the published contract (docs/topics.md).
        topic_contract.assert_every_topic_keeps_its_contract(b.settings, legacy_keys=True)
    finally:
        asyncio.run(b.stop())


@pytest.fixture(scope="session")
def settings(broker: EmbeddedBroker, session_dir: Path) -> Settings:
    return broker.settings.replace(
        sqlite_path=session_dir / "store.sqlite3",
        streams_data_dir=session_dir / "streams",
        streams_web_port=free_port(),
        log_dir=session_dir / "log",
        dashboard_tile_url="",
        ingest_tokens_file=session_dir / "ingest-tokens",
    )


@pytest.fixture(scope="session")
def fleet_token(settings: Settings) -> str:
    """A token for the default fleet, made as `dronetrack token create` makes one."""
    return tokens.create(settings.ingest_tokens_file, settings.default_fleet)


@pytest.fixture(scope="session")
def auth(fleet_token: str) -> dict[str, str]:
    """Request headers of a ground station of the default fleet posting JSON."""
    return {"Authorization": f"Bearer {fleet_token}", "Content-Type": "application/json"}


@pytest.fixture(scope="session")
def worker(settings: Settings, session_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One Faust worker for the whole session (start-up is the slow part of Faust)."""
    log = session_dir / "streams.log"
    with log.open("ab") as out:
        proc = processes.spawn(
            [sys.executable, "-m", "streams"], env={**os.environ, **settings.to_env()}, output=out
        )
    yield proc
    code = processes.stop(proc, 30.0)
    assert code == 0, f"worker exited with {code}; log: {log}"
