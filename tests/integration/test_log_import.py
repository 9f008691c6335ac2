"""`dronetrack import-log` with flight logs written in the test: a MAVLink .tlog (pymavlink
frames, each behind its 8-byte receive time, as ground stations record them) and a PX4 ULog
(written by the format's published layout), through ingest and the worker into the track."""

from __future__ import annotations

import struct
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymavlink.dialects.v20 import common as mavlink

from dronetrack.settings import Settings
from dronetrack.store import Store, open_store
from tests.integration.conftest import eventually
from tests.integration.helpers import ingest_process

DAY_MS = 86_400_000
T0_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z: history, days old


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    s = open_store(settings)
    await s.open()
    yield s
    await s.close()


def write_tlog(path: Path, t0_ms: int, seconds: int) -> None:
    """A 10 Hz flight of system 1 north from 47.0, with a ground station's heartbeats."""
    vehicle = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)
    gcs = mavlink.MAVLink(None, srcSystem=255, srcComponent=190)
    with path.open("wb") as f:

        def put(at_ms: int, sender: mavlink.MAVLink, msg: mavlink.MAVLink_message) -> None:
            f.write(struct.pack(">Q", at_ms * 1000) + msg.pack(sender))

        for i in range(seconds * 10):
            at = t0_ms + i * 100
            if i % 10 == 0:
                put(at, vehicle, mavlink.MAVLink_heartbeat_message(2, 3, 129, 0, 4, 3))
                put(at, gcs, mavlink.MAVLink_heartbeat_message(6, 8, 0, 0, 4, 3))
                battery = 90 - i // 10
                put(at, vehicle, mavlink.MAVLink_sys_status_message(*[0] * 6, battery, *[0] * 6))
            put(
                at,
                vehicle,
                mavlink.MAVLink_global_position_int_message(
                    0, 470_000_000 + i * 100, 80_000_000, 500_000, 100_000, 1_000, 0, 0, 0
                ),
            )


def _ulog_message(kind: bytes, payload: bytes) -> bytes:
    return struct.pack("<HB", len(payload), kind[0]) + payload


def write_ulog(path: Path, t0_ms: int, seconds: int) -> None:
    """A minimal PX4 ULog: five topics at 10 Hz from boot time 1 s, GPS UTC tying boot to
    ``t0_ms``. Layout as published in PX4's ULog file format: header, formats, subscriptions,
    data (each data message starts with its subscription id and a uint64 timestamp)."""
    topics = {
        "vehicle_global_position": ("uint64_t timestamp;double lat;double lon;float alt;", "<Qddf"),
        "vehicle_gps_position": ("uint64_t timestamp;uint64_t time_utc_usec;", "<QQ"),
        "battery_status": ("uint64_t timestamp;float remaining;", "<Qf"),
        "vehicle_status": ("uint64_t timestamp;uint8_t arming_state;", "<QB"),
        "vehicle_local_position": (
            "uint64_t timestamp;float vx;float vy;float vz;float heading;",
            "<Qffff",
        ),
    }
    boot_us = 1_000_000
    out = bytearray(b"ULog\x01\x12\x35\x01" + struct.pack("<Q", boot_us))
    out += _ulog_message(b"B", bytes(40))  # flag bits: no (in)compatible flags
    for name, (fields, _) in topics.items():
        out += _ulog_message(b"F", f"{name}:{fields}".encode())
    for msg_id, name in enumerate(topics):
        out += _ulog_message(b"A", struct.pack("<BH", 0, msg_id) + name.encode())
    packs = [struct.Struct(fmt) for _, fmt in topics.values()]
    for i in range(seconds * 10):
        t = boot_us + i * 100_000
        rows = [
            (t, 46.0 + i / 10_000, 7.0, 430.5),
            (t, t0_ms * 1000 + i * 100_000),
            (t, 0.8 - i / 1_000),
            (t, 2),
            (t, 3.0, 4.0, -0.5, 1.5707964),
        ]
        for msg_id, (pack, row) in enumerate(zip(packs, rows, strict=True)):
            out += _ulog_message(b"D", struct.pack("<H", msg_id) + pack.pack(*row))
    path.write_bytes(bytes(out))


def import_log(settings: Settings, url: str, token_file: Path, log: Path, drone: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dronetrack",
            "import-log",
            str(log),
            "--drone",
            drone,
            "--url",
            url,
            "--token-file",
            str(token_file),
            "--rate",
            "1",
        ],
        env={**settings.to_env(), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("kind", ["tlog", "ulg"])
async def test_a_flight_log_fills_the_track_with_its_own_times(
    settings: Settings, store: Store, fleet_token: str, tmp_path: Path, kind: str
) -> None:
    log = tmp_path / f"flight.{kind}"
    (write_tlog if kind == "tlog" else write_ulog)(log, T0_MS, seconds=60)
    token_file = tmp_path / "token"
    token_file.write_text(fleet_token)
    drone = f"log-{kind}-{uuid.uuid4().hex[:6]}"
    with ingest_process(settings, tmp_path / "ingest.log") as (url, _):
        assert import_log(settings, url, token_file, log, drone) == f"sent 60 records of {drone}"

    async def tracked() -> list[int] | None:
        points = await store.track(settings.default_fleet, drone, limit=1_000, since_ms=0)
        return [p.ts for p in points] if len(points) == 60 else None

    stamps = await eventually(tracked, what="the log's 60 track points")
    assert stamps == [T0_MS + s * 1000 for s in range(59, -1, -1)]  # newest first, 1 Hz
    [point] = await store.track(
        settings.default_fleet, drone, limit=1, since_ms=T0_MS + 10_000, before_ms=T0_MS + 10_001
    )
    expected = {"tlog": (47.001, 8.0, 500.0, 80.0), "ulg": (46.01, 7.0, 430.5, 70.0)}[kind]
    assert (round(point.lat, 6), point.lon, point.alt_m, point.battery_pct) == expected
