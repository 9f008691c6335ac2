"""A simulated fleet: drones fly waypoint routes around a home base, drain their batteries,
return to recharge, and report to the ingest API like a ground station would (one batch per tick).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass, field

import aiohttp
import msgspec

from dronetrack.record import Status, TelemetryIn

log = logging.getLogger(__name__)

EARTH_RADIUS_M = 6_371_000.0
HOME = (47.3769, 8.5417)  # Zurich


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    dlat = math.degrees(north_m / EARTH_RADIUS_M)
    dlon = math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat))))
    return lat + dlat, lon + dlon


def _bearing_and_distance(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    north = math.radians(b[0] - a[0]) * EARTH_RADIUS_M
    east = math.radians(b[1] - a[1]) * EARTH_RADIUS_M * math.cos(math.radians(a[0]))
    return math.degrees(math.atan2(east, north)) % 360.0, math.hypot(north, east)


@dataclass
class SimDrone:
    drone_id: str
    home: tuple[float, float]
    rng: random.Random
    cruise_mps: float = 12.0
    cruise_alt_m: float = 100.0
    drain_pct_s: float = 0.05
    battery_pct: float = 100.0
    pos: tuple[float, float] = (0.0, 0.0)
    alt_m: float = 0.0
    heading_deg: float = 0.0
    speed_mps: float = 0.0
    status: Status = "ground"
    waypoints: list[tuple[float, float]] = field(default_factory=list)
    seq: int = 0

    def __post_init__(self) -> None:
        self.pos = self.home
        self.battery_pct = self.rng.uniform(40, 100)
        self.cruise_mps = self.rng.uniform(8, 16)
        self.cruise_alt_m = self.rng.uniform(60, 120)
        self.drain_pct_s = self.rng.uniform(0.03, 0.08)
        self._plan()

    def _plan(self) -> None:
        self.waypoints = [
            _offset(*self.home, self.rng.uniform(-3000, 3000), self.rng.uniform(-3000, 3000))
            for _ in range(self.rng.randint(3, 6))
        ] + [self.home]

    def step(self, dt: float) -> None:
        """Advance the drone by ``dt`` seconds."""
        if self.status == "ground":
            self.speed_mps = 0.0
            self.alt_m = 0.0
            self.battery_pct = min(100.0, self.battery_pct + 1.5 * dt)
            if self.battery_pct >= 95.0:
                self.status = "airborne"
                self._plan()
            return
        self.battery_pct = max(0.0, self.battery_pct - self.drain_pct_s * dt)
        if self.battery_pct < 20.0 and self.waypoints[:1] != [self.home]:
            self.waypoints = [self.home]  # return to base
        self.alt_m += max(-3.0 * dt, min(3.0 * dt, self.cruise_alt_m - self.alt_m))
        target = self.waypoints[0]
        bearing, distance = _bearing_and_distance(self.pos, target)
        travel = self.cruise_mps * dt
        self.heading_deg = bearing
        self.speed_mps = self.cruise_mps
        if distance <= travel:
            self.pos = target
            self.waypoints.pop(0)
            if not self.waypoints:
                self.status = "ground"
            return
        rad = math.radians(bearing)
        self.pos = _offset(*self.pos, travel * math.cos(rad), travel * math.sin(rad))

    def report(self, now_ms: int) -> TelemetryIn:
        self.seq += 1
        return TelemetryIn(
            drone_id=self.drone_id,
            ts=now_ms,
            lat=round(self.pos[0], 7),
            lon=round(self.pos[1], 7),
            alt_m=round(self.alt_m, 1),
            speed_mps=round(self.speed_mps, 2),
            heading_deg=round(self.heading_deg, 1) % 360.0,
            battery_pct=round(self.battery_pct, 2),
            status=self.status,
            seq=self.seq,
        )


def make_fleet(size: int, seed: int = 7, prefix: str = "sim") -> list[SimDrone]:
    rng = random.Random(seed)
    return [SimDrone(f"{prefix}-{i:03d}", HOME, random.Random(rng.random())) for i in range(size)]


async def simulate(
    ingest_url: str,
    drones: int,
    rate_hz: float,
    token: str = "",
    duration_s: float | None = None,
) -> int:
    """Post one batch per tick until cancelled or ``duration_s`` passed; returns records sent."""
    fleet = make_fleet(drones)
    encoder = msgspec.json.Encoder()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    interval = 1.0 / rate_hz
    sent = 0
    started = last = time.monotonic()
    async with aiohttp.ClientSession(headers=headers) as http:
        while duration_s is None or time.monotonic() - started < duration_s:
            now = time.monotonic()
            for drone in fleet:
                drone.step(now - last)
            last = now
            batch = [d.report(time.time_ns() // 1_000_000) for d in fleet]
            try:
                async with http.post(f"{ingest_url}/v1/telemetry", data=encoder.encode(batch)) as r:
                    if r.status == 202:
                        sent += len(batch)
                    else:
                        log.warning(
                            "ingest refused a batch",
                            extra={"status": r.status, "body": (await r.text())[:500]},
                        )
            except aiohttp.ClientError as exc:
                log.warning("ingest unreachable", extra={"error": repr(exc)})
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - now)))
    return sent
