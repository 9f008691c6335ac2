"""Past flights from flight logs: a MAVLink telemetry log (``.tlog``, what Mission Planner and
QGroundControl record: each frame behind the ground station's receive time) or a PX4 ULog
(``.ulg``, the autopilot's own log), made into records with their original times.

A tlog goes through the same ``Vehicle`` mapping as the live bridge, with the log's clock in
place of ours. A ULog carries the autopilot's topics, not MAVLink; its times count from boot,
and the GPS's UTC time ties them to the calendar.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from bridge.decode import USED
from bridge.vehicle import Skip, Vehicle
from dronetrack.record import TelemetryIn
from dronetrack.settings import Settings

# Tells ingest that the records are history on purpose (docs/integrations.md).
BACKFILL_HEADER = "Dronetrack-Backfill"

_encode = msgspec.json.Encoder().encode
_validate = msgspec.json.Decoder(TelemetryIn)


class LogUnreadable(ValueError):
    """The file is not a flight log this command reads, or lacks what a record needs."""


def records(path: Path, drone_id: str, rate_hz: float) -> Iterator[bytes | Skip]:
    """The log's positions as records, at most ``rate_hz`` per second of the log's time."""
    suffix = path.suffix.lower()
    if suffix == ".tlog":
        return _tlog(path, drone_id, rate_hz)
    if suffix == ".ulg":
        return _ulog(path, drone_id, rate_hz)
    raise LogUnreadable(f"{path.name}: expected a .tlog (MAVLink) or .ulg (PX4 ULog) file")


def _tlog(path: Path, drone_id: str, rate_hz: float) -> Iterator[bytes | Skip]:
    from pymavlink import mavutil

    log = mavutil.mavlink_connection(str(path), dialect="common", robust_parsing=True)
    every_ms = 1000.0 / rate_hz
    vehicles: dict[int, Vehicle] = {}
    sysid: int | None = None  # the first system that reports a position is the drone
    last_ms = -every_ms
    try:
        while (msg := log.recv_match(type=list(USED))) is not None:
            src = msg.get_srcSystem()
            if sysid is not None and src != sysid:
                continue
            at_ms = round(msg._timestamp * 1000)
            vehicle = vehicles.setdefault(src, Vehicle())
            if vehicle.apply(msg, at_ms) and sysid is None:
                sysid = src
            if vehicle.fresh and vehicle.position_ms - last_ms >= every_ms:
                last_ms = vehicle.position_ms
                yield vehicle.record(drone_id)
    finally:
        log.close()


def _ulog(path: Path, drone_id: str, rate_hz: float) -> Iterator[bytes | Skip]:
    from pyulog import ULog
    from pyulog.core import ULogException

    topics = [
        "vehicle_global_position",
        "vehicle_local_position",
        "vehicle_gps_position",
        "sensor_gps",
        "battery_status",
        "vehicle_status",
    ]
    try:
        ulog = ULog(str(path), topics)
    except (ULogException, OSError, ValueError) as exc:
        raise LogUnreadable(f"{path.name}: not a readable ULog file ({exc})") from None
    data = {d.name: d.data for d in ulog.data_list if d.multi_id == 0}
    position = data.get("vehicle_global_position")
    if position is None:
        raise LogUnreadable(f"{path.name}: the log has no vehicle_global_position")
    offset_us = _utc_offset_us(data)
    if offset_us is None:
        raise LogUnreadable(f"{path.name}: the log has no GPS UTC time to date its records by")
    battery = _Series(data.get("battery_status"), "remaining")
    armed = _Series(data.get("vehicle_status"), "arming_state")
    local = data.get("vehicle_local_position")
    vx, vy = _Series(local, "vx"), _Series(local, "vy")
    vz, heading = _Series(local, "vz"), _Series(local, "heading")
    every_us = 1e6 / rate_hz
    last_us = -every_us
    for i, stamp in enumerate(position["timestamp"]):
        t = int(stamp)
        if t - last_us < every_us:
            continue
        last_us = t
        remaining = battery.at(t)
        if remaining is None or remaining < 0:
            yield "no_battery"
            continue
        east, north = vy.at(t), vx.at(t)
        speed = (east**2 + north**2) ** 0.5 if east is not None and north is not None else 0.0
        yaw = heading.at(t)
        down = vz.at(t)
        arming = armed.at(t)
        body = _encode(
            TelemetryIn(
                drone_id=drone_id,
                ts=(t + offset_us) // 1000,
                lat=float(position["lat"][i]),
                lon=float(position["lon"][i]),
                alt_m=round(float(position["alt"][i]), 3),
                speed_mps=round(speed, 3),
                heading_deg=round(_degrees(yaw), 2) if yaw is not None else 0.0,
                battery_pct=round(min(1.0, remaining) * 100, 1),
                status=None if arming is None else ("airborne" if arming == 2 else "ground"),
                vertical_speed_mps=None if down is None else round(-down, 3),
            )
        )
        try:
            _validate.decode(body)
        except msgspec.ValidationError:
            yield "invalid"
            continue
        yield body


def _degrees(radians: float) -> float:
    import math

    return math.degrees(radians) % 360.0


def _utc_offset_us(data: dict[str, Any]) -> int | None:
    """Boot time to UTC: the first GPS sample that knows the UTC time."""
    for name in ("vehicle_gps_position", "sensor_gps"):
        gps = data.get(name)
        if gps is None or "time_utc_usec" not in gps:
            continue
        for utc, t in zip(gps["time_utc_usec"], gps["timestamp"], strict=True):
            if utc > 0:
                return int(utc) - int(t)
    return None


class _Series:
    """A topic's field by time: the last value at or before a time (None before the first)."""

    def __init__(self, topic: dict[str, Any] | None, field: str) -> None:
        self.times = [] if topic is None or field not in topic else list(topic["timestamp"])
        self.values = [] if not self.times else list(topic[field])  # type: ignore[index]

    def at(self, t: int) -> float | None:
        i = bisect.bisect_right(self.times, t) - 1
        return None if i < 0 else float(self.values[i])


async def send_log(
    path: Path, drone_id: str, settings: Settings, rate_hz: float, spool_dir: Path
) -> tuple[int, dict[str, int]]:
    """Send the log's records to ingest in batches, oldest first, as history (see
    docs/integrations.md); returns (records sent, records skipped by reason)."""
    import aiohttp
    from prometheus_client import CollectorRegistry

    from bridge.app import read_token
    from bridge.metrics import BridgeMetrics
    from bridge.sender import Sender
    from bridge.spool import Spool, lane_key

    metrics = BridgeMetrics(CollectorRegistry())
    spool = Spool(spool_dir / "import.sqlite3", max_records=2**62)
    skipped: dict[str, int] = {}
    chunk: list[tuple[int, bytes]] = []
    lane = lane_key(drone_id)
    for made in records(path, drone_id, rate_hz):
        if isinstance(made, bytes):
            chunk.append((lane, made))
            if len(chunk) >= 10_000:
                spool.push(chunk)
                chunk = []
        else:
            skipped[made] = skipped.get(made, 0) + 1
    spool.push(chunk)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            sender = Sender(
                spool=spool,
                http=http,
                url=settings.bridge_ingest_url,
                token=read_token(settings),
                metrics=metrics,
                batch_records=settings.bridge_batch_records,
                backoff_max_s=settings.bridge_backoff_max_s,
                headers={BACKFILL_HEADER: "1"},
            )
            await sender.drain()
    finally:
        spool.close()
    if sender.refused:
        skipped["refused"] = sender.refused
    return sender.sent, skipped
