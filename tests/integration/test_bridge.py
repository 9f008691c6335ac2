"""The MAVLink bridge as a process, fed real MAVLink 2 frames over UDP by pymavlink, in front of
a real ingest process, the embedded broker and the session's stream worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymavlink.dialects.v20 import common as mavlink

from dronetrack import processes
from dronetrack.broker import free_port
from dronetrack.settings import Settings
from dronetrack.store import Store, open_store
from tests.integration.conftest import eventually
from tests.integration.helpers import ingest_process, read_topic

ARMED, DISARMED = 128 | 1, 1


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    s = open_store(settings)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        yield sock


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Vehicle:
    """A vehicle's MAVLink side: frames as an autopilot sends them, over UDP."""

    def __init__(self, sysid: int, port: int, sock: socket.socket) -> None:
        self.mav = mavlink.MAVLink(None, srcSystem=sysid, srcComponent=1)
        self.sock = sock
        self.port = port

    def send(self, *messages: mavlink.MAVLink_message) -> None:
        self.sock.sendto(b"".join(m.pack(self.mav) for m in messages), ("127.0.0.1", self.port))

    def report(self, lat_e7: int, battery: int, armed: bool = True) -> None:
        self.send(
            mavlink.MAVLink_heartbeat_message(2, 3, ARMED if armed else DISARMED, 0, 4, 3),
            mavlink.MAVLink_sys_status_message(0, 0, 0, 500, 12_000, -1, battery, 0, 0, 0, 0, 0, 0),
            mavlink.MAVLink_global_position_int_message(
                0, lat_e7, 85_417_000, 480_000, 60_000, 0, 700, 0, 9_000
            ),
        )


class Bridge:
    def __init__(self, settings: Settings, tmp: Path, ingest_url: str, token: str) -> None:
        self.udp_port = free_udp_port()
        self.metrics_port = free_port()
        self.prefix = f"bt{uuid.uuid4().hex[:6]}-"
        token_file = tmp / "bridge-token"
        token_file.write_text(token + "\n")
        self.settings = settings.replace(
            bridge_connect=f"udp:127.0.0.1:{self.udp_port}",
            bridge_ingest_url=ingest_url,
            bridge_token_file=token_file,
            bridge_queue_path=tmp / "bridge-queue.sqlite3",
            bridge_rate_hz=20.0,
            bridge_backoff_max_s=0.5,
            bridge_drone_prefix=self.prefix,
            bridge_metrics_port=self.metrics_port,
        )
        self.log = tmp / "bridge.log"

    @contextmanager
    def running(self) -> Iterator[subprocess.Popen[bytes]]:
        env = {**os.environ, **self.settings.to_env()}
        with self.log.open("ab") as out:
            proc = processes.spawn([sys.executable, "-m", "bridge"], env=env, output=out)
        try:
            yield proc
        finally:
            processes.stop(proc, 30.0)

    async def metric(self, name: str, **labels: str) -> float | None:
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as r,
            ):
                text = await r.text()
        except aiohttp.ClientError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return sample.value
        return None

    async def listening(self) -> None:
        async def answers() -> bool:
            return await self.metric("bridge_vehicles") is not None

        await eventually(answers, timeout=30, what="the bridge to answer")

    async def queued(self, n: int) -> None:
        async def reached() -> bool:
            return await self.metric("bridge_records_total", outcome="queued") == n

        await eventually(reached, timeout=30, what=f"{n} records queued by the bridge")

    async def drained(self) -> None:
        async def empty() -> bool:
            return await self.metric("bridge_queue_records") == 0

        await eventually(empty, timeout=60, what="the bridge's queue to empty")


@pytest.mark.usefixtures("worker")
async def test_vehicles_arrive_with_their_position_battery_and_status(
    settings: Settings,
    store: Store,
    fleet_token: str,
    tmp_path: Path,
    udp: socket.socket,
) -> None:
    with ingest_process(settings, tmp_path / "ingest.log") as (url, _):
        bridge = Bridge(settings, tmp_path, url, fleet_token)
        with bridge.running():
            vehicles = {sysid: Vehicle(sysid, bridge.udp_port, udp) for sysid in (1, 2, 3)}
            await bridge.listening()

            async def heard() -> bool:
                vehicles[1].report(473_000_000, 91)
                vehicles[2].report(474_000_000, 62, armed=False)
                vehicles[3].report(475_000_000, 18)
                return await bridge.metric("bridge_vehicles") == 3

            await eventually(heard, what="three vehicles heard")

            async def stored() -> list[tuple[str, float, float, float, float, str | None]] | None:
                rows = sorted(
                    (r.drone_id, r.lat, r.lon, r.alt_m, r.battery_pct, r.status)
                    for r in await store.latest(settings.default_fleet)
                    if r.drone_id.startswith(bridge.prefix)
                )
                return rows if len(rows) == 3 else None

            rows = await eventually(stored, what="the three drones' latest state")
    p = bridge.prefix
    assert rows == [
        (f"{p}1", 47.3, 8.5417, 480.0, 91.0, "airborne"),
        (f"{p}2", 47.4, 8.5417, 480.0, 62.0, "ground"),
        (f"{p}3", 47.5, 8.5417, 480.0, 18.0, "airborne"),
    ]


async def test_records_made_while_ingest_is_down_arrive_once_in_event_time_order(
    settings: Settings, fleet_token: str, tmp_path: Path, udp: socket.socket
) -> None:
    port = free_port()
    bridge = Bridge(settings, tmp_path, f"http://127.0.0.1:{port}", fleet_token)
    with bridge.running():
        a, b = Vehicle(1, bridge.udp_port, udp), Vehicle(2, bridge.udp_port, udp)
        await bridge.listening()
        for i in range(40):  # each position is awaited into the queue: one record each
            a.report(470_000_000 + i * 1_000, 90)
            b.report(460_000_000 + i * 1_000, 80)
            await bridge.queued(2 * (i + 1))
        assert await bridge.metric("bridge_queue_records") == 80  # ingest is down
        with ingest_process(settings, tmp_path / "ingest.log", port):
            await bridge.drained()
    found = await read_topic(settings, lambda r: r.drone_id.startswith(bridge.prefix))
    for sysid, lat0 in ((1, 47.0), (2, 46.0)):
        mine = [r for r, _ in found if r.drone_id == f"{bridge.prefix}{sysid}"]
        assert [round(r.lat, 4) for r in mine] == [round(lat0 + i / 10_000, 4) for i in range(40)]
        assert [r.ts for r in mine] == sorted({r.ts for r in mine}), "once each, oldest first"


@pytest.mark.usefixtures("worker")
async def test_a_killed_bridge_sends_its_queue_after_a_restart_once(
    settings: Settings,
    store: Store,
    fleet_token: str,
    tmp_path: Path,
    udp: socket.socket,
) -> None:
    port = free_port()
    bridge = Bridge(settings, tmp_path, f"http://127.0.0.1:{port}", fleet_token)
    with bridge.running() as proc:
        v = Vehicle(7, bridge.udp_port, udp)
        await bridge.listening()
        for i in range(25):
            v.report(450_000_000 + i * 1_000, 70)
            await bridge.queued(i + 1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    with ingest_process(settings, tmp_path / "ingest.log", port):
        with bridge.running():
            await bridge.drained()
        drone = f"{bridge.prefix}7"

        async def tracked() -> int | None:
            n = len(await store.track(settings.default_fleet, drone, limit=1_000))
            return n if n == 25 else None

        await eventually(tracked, what="25 track points")
    on_topic = await read_topic(settings, lambda r: r.drone_id == drone)
    assert len(on_topic) == 25, "each queued record on the topic exactly once"
