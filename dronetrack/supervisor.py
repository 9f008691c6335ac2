"""``dronetrack run``: the whole system on one machine, started in order and stopped in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from dronetrack import processes, tokens
from dronetrack.broker import EmbeddedBroker
from dronetrack.passwords import hash_password
from dronetrack.settings import Settings
from dronetrack.store import User, open_store

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]


class Supervisor:
    def __init__(self, settings: Settings, simulate: bool = True) -> None:
        self.settings = settings
        self.simulate = simulate
        self.broker: EmbeddedBroker | None = None
        self.children: list[Child] = []
        self.demo_token = ""
        # A fresh password every run, printed with the URLs: nothing guessable is ever left on.
        self.demo_user = ("demo", secrets.token_urlsafe(12))

    def _spawn(self, name: str, argv: Sequence[str], **extra_env: str) -> Child:
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.settings.log_dir / f"{name}.log").open("ab") as out:
            env = {**os.environ, **self.settings.to_env(), **extra_env}
            proc = processes.spawn(argv, env=env, output=out, own_session=True)
        child = Child(name, proc)
        self.children.append(child)
        return child

    async def start(self) -> None:
        s = self.settings
        if s.kafka_embedded:
            self.broker = EmbeddedBroker(
                s, port=s.embedded_broker_port, log_path=s.log_dir / "broker.log"
            )
            await self.broker.start()
            self.settings = s = self.broker.settings
        # A fresh token for the demo fleet on every run, revoked when the run stops.
        self.demo_token = tokens.create(s.ingest_tokens_file, s.default_fleet)
        await self._create_demo_user()
        py = sys.executable
        self._spawn("streams", [py, "-m", "streams"])
        ingest = self._spawn("ingest", [py, "-m", "ingest"])
        dashboard = self._spawn("dashboard", [py, "-m", "dashboard"])
        await asyncio.gather(
            processes.wait_ready(self.ingest_url, ingest.proc, ingest.name),
            processes.wait_ready(self.dashboard_url, dashboard.proc, dashboard.name),
        )
        if self.simulate:
            self._spawn(
                "simulator",
                [py, "-m", "dronetrack", "simulate", "--url", self.ingest_url],
                DRONETRACK_SIM_TOKEN=self.demo_token,
            )

    async def _create_demo_user(self) -> None:
        """A dashboard login for the default fleet, so the map can be opened at once."""
        name, password = self.demo_user
        store = open_store(self.settings)
        await store.open()
        try:
            hashed = await asyncio.to_thread(hash_password, password)
            await store.put_user(
                User(name=name, password_hash=hashed, fleets=[self.settings.default_fleet])
            )
        finally:
            await store.close()

    @property
    def ingest_url(self) -> str:
        return f"http://{self.settings.ingest_host}:{self.settings.ingest_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.settings.dashboard_host}:{self.settings.dashboard_port}"

    async def wait(self, stop: asyncio.Event) -> int:
        """Until ``stop`` is set (exit 0) or until a service dies on its own (exit 1)."""
        while not stop.is_set():
            for child in self.children:
                if child.proc.poll() is not None:
                    log.error(
                        "service exited",
                        extra={"service": child.name, "code": child.proc.returncode},
                    )
                    return 1
            if self.broker is not None and not self.broker.running:
                log.error("embedded broker exited")
                return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        return 0

    async def stop(self) -> None:
        """Producers first, so nothing is left half-sent: simulator, ingest, streams, dashboard."""
        order = ["simulator", "ingest", "streams", "dashboard"]
        for child in sorted(self.children, key=lambda c: order.index(c.name)):
            await asyncio.to_thread(processes.stop, child.proc, 20.0)
        self.children.clear()
        if self.broker is not None:
            await self.broker.stop()
        if self.demo_token:
            tokens.revoke(self.settings.ingest_tokens_file, self.demo_token)


async def run(settings: Settings, simulate: bool = True) -> int:
    supervisor = Supervisor(settings, simulate)
    stop = asyncio.Event()
    starting = asyncio.create_task(supervisor.start())

    def on_signal() -> None:
        stop.set()
        starting.cancel()  # a signal during start-up stops whatever has started so far

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        try:
            await starting
        except asyncio.CancelledError:
            return 0
        print(
            "dronetrack is running:\n"
            f"  dashboard  {supervisor.dashboard_url}\n"
            f"  sign in    {supervisor.demo_user[0]} / {supervisor.demo_user[1]}\n"
            f"  ingest     {supervisor.ingest_url}/v1/telemetry\n"
            f"  token      {supervisor.demo_token}  (fleet {settings.default_fleet!r}, "
            "valid until this run stops)\n"
            f"  api docs   {supervisor.ingest_url}/openapi.json\n"
            f"  kafka      {supervisor.settings.kafka_bootstrap_servers}\n"
            f"  logs       {settings.log_dir}/\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        return await supervisor.wait(stop)
    except processes.NotReady as exc:
        print(f"dronetrack: {exc} (see {settings.log_dir}/)", file=sys.stderr)
        return 1
    finally:
        await supervisor.stop()
        print("dronetrack stopped.", flush=True)
