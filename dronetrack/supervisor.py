"""``dronetrack run``: the whole system on one machine, started in order, kept running, and
stopped in order.

A service that exits on its own is restarted the way Kubernetes restarts a Deployment's pod:
after a delay that doubles with every quick failure (``Restarts``), counted in the console and
in ``dronetrack_supervisor_restarts_total`` on this process's own ``/metrics``. Only a service
that keeps failing soon after its start makes the run give up (and stop in order).

Every child runs in its own session (process group), so a terminal's Ctrl-C reaches this process
alone, and the stop follows the data: no new records at ingest, the worker stores what is on the
topics, then the broker goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from dronetrack import processes, tokens, topics
from dronetrack import web as ops_web
from dronetrack.broker import EmbeddedBroker, free_port
from dronetrack.passwords import hash_password
from dronetrack.settings import PREFIX, Settings
from dronetrack.store import User, open_store

log = logging.getLogger(__name__)

# The order services start in; they stop in the reverse of the data's path (see stop()).
SERVICES = ("streams", "notifier", "ingest", "dashboard", "simulator")


def say(message: str) -> None:
    """A line for the person at the console (the log gets its own copy)."""
    print(f"dronetrack: {message}", flush=True)
    log.info(message)


@dataclass
class Restarts:
    """Kubernetes' CrashLoopBackOff, scaled to one machine: the delay before a restart doubles
    with each failure that came within ``quick_s`` of the start (from ``base_s`` up to
    ``max_s``); a service that ran longer starts over at ``base_s``. After ``give_up_after``
    quick failures in a row, ``failed`` answers None: stop trying."""

    base_s: float = 1.0
    max_s: float = 30.0
    quick_s: float = 30.0
    give_up_after: int = 5
    quick_failures: int = 0

    def failed(self, ran_s: float) -> float | None:
        """The delay before the next start of a service that ran ``ran_s``, or None."""
        if ran_s >= self.quick_s:
            self.quick_failures = 0
            return self.base_s
        self.quick_failures += 1
        if self.quick_failures >= self.give_up_after:
            return None
        return min(self.base_s * 2.0 ** (self.quick_failures - 1), self.max_s)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    restarts: Restarts = field(default_factory=Restarts)
    due: float | None = None  # when a crashed child starts again
    restarted: int = 0


class GiveUp(RuntimeError):
    """A service kept failing soon after its start."""


class PortTaken(RuntimeError):
    """A port the run needs is in use; the message names the setting that moves it."""


def _ports(settings: Settings) -> list[tuple[str, str, str, int]]:
    """(what, setting, host, port) for each port the run listens on (0: any free one)."""
    s = settings
    ports = [
        ("ingest", "ingest_port", s.ingest_host, s.ingest_port),
        ("dashboard", "dashboard_port", s.dashboard_host, s.dashboard_port),
        (
            "the stream worker's ops endpoints",
            "streams_web_port",
            s.streams_web_host,
            s.streams_web_port,
        ),
        ("the notifier's ops endpoints", "notify_port", s.notify_host, s.notify_port),
        ("dronetrack run's metrics", "run_web_port", s.run_web_host, s.run_web_port),
    ]
    if s.kafka_embedded:
        ports.append(
            ("the embedded broker", "embedded_broker_port", "127.0.0.1", s.embedded_broker_port)
        )
    return [p for p in ports if p[3]]


def check_ports(settings: Settings) -> None:
    """Fail with the port and the setting that moves it, before anything starts."""
    for what, name, host, port in _ports(settings):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            try:
                sock.bind((host, port))
            except OSError:
                raise PortTaken(
                    f"port {port} ({what}) is in use: stop what holds it, or choose another "
                    f"port with {PREFIX}{name.upper()}=PORT (0: any free port)"
                ) from None


async def backlog(settings: Settings, groups: dict[str, str]) -> int:
    """Records on each topic that its consumer group (``{group: topic}``) has not committed."""
    behind = 0
    for group, topic in groups.items():
        # A consumer that never subscribes only reads the group's offsets (the admin client's
        # OffsetFetch breaks on the embedded broker for a group without any).
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.require_kafka(), group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            await consumer.topics()  # fetches the metadata partitions_for_topic reads
            parts = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            for tp, end in (await consumer.end_offsets(parts)).items():
                behind += max(0, end - (await consumer.committed(tp) or 0))
        finally:
            await consumer.stop()
    return behind


class Supervisor:
    def __init__(self, settings: Settings, simulate: bool = True) -> None:
        # Port 0 means any free port; the services are told the one chosen here.
        self.settings = settings.replace(
            **{
                name: free_port(getattr(settings, name.replace("_port", "_host")))
                for name in ("ingest_port", "dashboard_port", "streams_web_port", "notify_port")
                if getattr(settings, name) == 0
            }
        )
        self.simulate = simulate
        self.broker: EmbeddedBroker | None = None
        self.broker_restarts = Restarts()
        self.broker_started = time.monotonic()
        self.children: dict[str, Child] = {}
        self.demo_token = ""
        # A fresh password every run, printed with the URLs: nothing guessable is ever left on.
        self.demo_user = ("demo", secrets.token_urlsafe(12))
        self.ops = web.Application()
        ops_web.instrument(self.ops)
        self.ops[ops_web.READY_CHECKS]["services"] = self._all_running
        self.restarts = Counter(
            "dronetrack_supervisor_restarts_total",
            "Restarts of a service (or the embedded broker) after it exited on its own.",
            ["service"],
            registry=self.ops[ops_web.REGISTRY],
        )
        for name in ("broker", *SERVICES):
            self.restarts.labels(name)
        self._ops_runner: web.AppRunner | None = None
        self.metrics_url = ""

    def _spawn(self, name: str, argv: Sequence[str], **extra_env: str) -> Child:
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings.to_env(), **extra_env}
        child = self.children.get(name)
        with (self.settings.log_dir / f"{name}.log").open("ab") as out:
            proc = processes.spawn(argv, env=env, output=out, own_session=True)
        if child is None:
            child = self.children[name] = Child(name, list(argv), env, proc)
        else:
            child.proc, child.started, child.due = proc, time.monotonic(), None
        return child

    def _respawn(self, child: Child) -> None:
        self._spawn(child.name, child.argv, **child.env)

    async def start(self) -> None:
        s = self.settings
        check_ports(s)
        await self._serve_ops()
        if s.kafka_embedded:
            self.broker = EmbeddedBroker(
                s, port=s.embedded_broker_port, log_path=s.log_dir / "broker.log"
            )
            await self.broker.start()
            self.broker_started = time.monotonic()
            self.settings = s = self.broker.settings
        # A fresh token for the demo fleet on every run, revoked when the run stops.
        self.demo_token = tokens.create(s.ingest_tokens_file, s.default_fleet)
        await self._create_demo_user()
        py = sys.executable
        self._spawn("streams", [py, "-m", "streams"])
        self._spawn("notifier", [py, "-m", "notifier"])
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

    async def _serve_ops(self) -> None:
        s = self.settings
        port = s.run_web_port or free_port(s.run_web_host)
        self._ops_runner = web.AppRunner(self.ops, access_log=None)
        await self._ops_runner.setup()
        await web.TCPSite(self._ops_runner, s.run_web_host, port).start()
        self.metrics_url = f"http://{s.run_web_host}:{port}/metrics"

    async def _all_running(self) -> None:
        down = [c.name for c in self.children.values() if c.proc.poll() is not None]
        if self.broker is not None and not self.broker.running:
            down.insert(0, "broker")
        if down:
            raise RuntimeError(f"restarting: {', '.join(down)}")

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
        """Restart what exits until ``stop`` is set (exit 0) or a service keeps failing (1)."""
        try:
            while not stop.is_set():
                if self.broker is not None and not self.broker.running:
                    await self._restart_broker(stop)
                now = time.monotonic()
                for child in self.children.values():
                    if child.due is None and child.proc.poll() is not None:
                        self._crashed(child, now)
                    elif child.due is not None and now >= child.due:
                        self._respawn(child)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)
        except GiveUp as exc:
            say(f"{exc}; giving up and stopping everything")
            return 1
        return 0

    def _crashed(self, child: Child, now: float) -> None:
        code, ran = child.proc.returncode, now - child.started
        delay = child.restarts.failed(ran)
        if delay is None:
            raise GiveUp(
                f"{child.name} exited with code {code} {child.restarts.give_up_after} times "
                f"in a row, each within {child.restarts.quick_s:g} s of its start "
                f"(see {self.settings.log_dir}/{child.name}.log)"
            )
        child.due = now + delay
        self.restarts.labels(child.name).inc()
        child.restarted += 1
        say(
            f"{child.name} exited with code {code} after {ran:.0f} s; restart {child.restarted} "
            f"in {delay:g} s (see {self.settings.log_dir}/{child.name}.log)"
        )

    async def _restart_broker(self, stop: asyncio.Event) -> None:
        """The broker kept its topics in memory: what was on them and not yet stored is gone.
        Ingest and the worker stop first (no 202 for a broker without its topics; the worker
        must not commit offsets of the old topics into the new ones) and start after it."""
        assert self.broker is not None
        code = self.broker.returncode
        ran = time.monotonic() - self.broker_started
        delay = self.broker_restarts.failed(ran)
        if delay is None:
            raise GiveUp(
                f"the broker exited with code {code} {self.broker_restarts.give_up_after} times "
                f"in a row, each within {self.broker_restarts.quick_s:g} s of its start"
            )
        self.restarts.labels("broker").inc()
        say(
            f"the broker exited with code {code}: records it held that were not yet stored "
            f"are lost (it keeps them in memory only); restarting it in {delay:g} s, then "
            "streams, the notifier and ingest"
        )
        await self.broker.stop()
        dependents = [
            self.children[n] for n in ("ingest", "notifier", "streams") if n in self.children
        ]
        # Briefly: what they still hold for the broker is gone with it (the worker's store
        # writes in flight finish meanwhile).
        await asyncio.gather(
            *(asyncio.to_thread(processes.stop, child.proc, 5.0) for child in dependents)
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        if stop.is_set():
            return
        await self.broker.start()
        self.broker_started = time.monotonic()
        for child in reversed(dependents):  # streams first, as at start-up
            self._respawn(child)
        say("the broker is back, with empty topics; streams, the notifier and ingest restarted")

    async def stop(self) -> None:
        """In the data's order, so nothing that got 202 is lost: the simulator, then ingest
        (it finishes the requests in flight and takes no more), then the worker once it has
        stored everything on the topics, the dashboard, and the broker last."""
        order = {name: i for i, name in enumerate(("simulator", "ingest"))}
        first = sorted(
            (c for c in self.children.values() if c.name in order), key=lambda c: order[c.name]
        )
        for child in first:
            say(f"stopping {child.name}")
            await asyncio.to_thread(processes.stop, child.proc, 20.0)
        streams = self.children.get("streams")
        if streams is not None and streams.proc.poll() is None:
            await self._drain()
            say("stopping streams")
            await asyncio.to_thread(processes.stop, streams.proc, 30.0)
        notifier = self.children.get("notifier")
        if notifier is not None:  # after the worker: it delivers the alerts the worker raised
            say("stopping notifier")
            await asyncio.to_thread(processes.stop, notifier.proc, 20.0)
        dashboard = self.children.get("dashboard")
        if dashboard is not None:
            say("stopping dashboard")
            await asyncio.to_thread(processes.stop, dashboard.proc, 20.0)
        self.children.clear()
        if self.broker is not None:
            say("stopping the broker")
            await self.broker.stop()
        if self.demo_token:
            tokens.revoke(self.settings.ingest_tokens_file, self.demo_token)
        if self._ops_runner is not None:
            await self._ops_runner.cleanup()

    async def _drain(self, timeout_s: float = 60.0) -> None:
        """Wait until the worker committed (so stored) everything on its input topics."""
        if self.broker is None or not self.broker.running:
            return
        from streams.sink import stats_topic

        groups = {
            self.settings.streams_worker_id: topics.TELEMETRY,
            # The fleet-minute agent's group (Faust's app id) reads the partials topic.
            stats_topic(self.settings): stats_topic(self.settings),
        }
        deadline = time.monotonic() + timeout_s
        said = -1
        while True:
            try:
                left = await backlog(self.settings, groups)
            except KafkaError as exc:
                say(f"cannot tell what the worker still has to store ({exc!r}); stopping it")
                return
            if left == 0:
                say("streams has stored every record on the topics")
                return
            if time.monotonic() > deadline:
                say(f"streams still had {left} records to store after {timeout_s:g} s")
                return
            if left != said:
                say(f"waiting for streams to store the {left} records still on the topics")
                said = left
            await asyncio.sleep(0.2)


async def run(settings: Settings, simulate: bool = True) -> int:
    supervisor = Supervisor(settings, simulate)
    stop = asyncio.Event()
    starting = asyncio.create_task(supervisor.start())

    def on_signal() -> None:
        if not stop.is_set():
            say("stopping (in order: the data already accepted is stored first)")
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
        broker_line = (
            "  broker     in memory only: if it crashes, records not yet stored are lost "
            "(it is restarted with empty topics)\n"
            if supervisor.broker is not None
            else ""
        )
        print(
            "dronetrack is running:\n"
            f"  dashboard  {supervisor.dashboard_url}\n"
            f"  sign in    {supervisor.demo_user[0]} / {supervisor.demo_user[1]}\n"
            f"  ingest     {supervisor.ingest_url}/v1/telemetry\n"
            f"  token      {supervisor.demo_token}  (fleet {settings.default_fleet!r}, "
            "valid until this run stops)\n"
            f"  api docs   {supervisor.ingest_url}/openapi.json\n"
            f"  kafka      {supervisor.settings.kafka_bootstrap_servers}\n"
            f"{broker_line}"
            f"  restarts   {supervisor.metrics_url}\n"
            f"  logs       {settings.log_dir}/\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        return await supervisor.wait(stop)
    except (processes.NotReady, PortTaken) as exc:
        print(f"dronetrack: {exc} (see {settings.log_dir}/)", file=sys.stderr)
        return 1
    finally:
        await supervisor.stop()
        print("dronetrack stopped.", flush=True)
