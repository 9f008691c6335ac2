"""Per-minute fleet statistics in tumbling windows, as mergeable partial aggregates.

Drones of one fleet are spread over partitions, hence over workers, so each worker sends partial
aggregates per (fleet, minute) and one place merges them. Every partial is built so that merging
is idempotent, commutative and associative (per-drone maxima/minima and sets, never counters):
a batch replayed after a crash merges to the same figures instead of counting twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

from dronetrack.record import Telemetry
from dronetrack.store import FleetStats
from streams.alerts import in_flight

MINUTE_MS = 60_000


class DroneMinute(msgspec.Struct, array_like=True, gc=False):
    """One drone within one minute: its last record's battery, its lowest, whether it flew."""

    last_ts: int
    battery: float
    battery_min: float
    in_flight: bool


class MinuteAgg(msgspec.Struct, gc=False):
    drones: dict[str, DroneMinute] = msgspec.field(default_factory=dict)
    alerts: set[str] = msgspec.field(default_factory=set)  # ids of alerts raised in the minute


def minute_of(ts: int) -> int:
    return ts - ts % MINUTE_MS


def _merge_drone(a: DroneMinute, b: DroneMinute) -> DroneMinute:
    if (b.last_ts, -b.battery) > (a.last_ts, -a.battery):
        last_ts, battery = b.last_ts, b.battery
    else:
        last_ts, battery = a.last_ts, a.battery
    return DroneMinute(
        last_ts, battery, min(a.battery_min, b.battery_min), a.in_flight or b.in_flight
    )


def add_record(agg: MinuteAgg, rec: Telemetry) -> None:
    """Fold one record into ``agg`` (in place)."""
    new = DroneMinute(rec.ts, rec.battery_pct, rec.battery_pct, in_flight(rec))
    old = agg.drones.get(rec.drone_id)
    agg.drones[rec.drone_id] = new if old is None else _merge_drone(old, new)


def merge(a: MinuteAgg, b: MinuteAgg) -> MinuteAgg:
    drones = dict(a.drones)
    for drone_id, d in b.drones.items():
        old = drones.get(drone_id)
        drones[drone_id] = d if old is None else _merge_drone(old, d)
    return MinuteAgg(drones=drones, alerts=a.alerts | b.alerts)


class Partials:
    """The partial aggregates one batch produces, keyed by (fleet, minute)."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, int], MinuteAgg] = {}

    def _agg(self, fleet: str, ts: int) -> MinuteAgg:
        key = (fleet, minute_of(ts))
        agg = self.by_key.get(key)
        if agg is None:
            agg = self.by_key[key] = MinuteAgg()
        return agg

    def add_record(self, rec: Telemetry) -> None:
        add_record(self._agg(rec.fleet, rec.ts), rec)

    def add_alerts(self, fleet: str, raised: Iterable[tuple[str, int]]) -> None:
        """``raised``: (alert_id, raised_at) of alerts raised."""
        for alert_id, raised_at in raised:
            self._agg(fleet, raised_at).alerts.add(alert_id)


def figures(fleet: str, minute: int, agg: MinuteAgg) -> FleetStats:
    drones = agg.drones.values()
    n = len(agg.drones)
    return FleetStats(
        fleet=fleet,
        minute=minute,
        drones_active=n,
        drones_in_flight=sum(1 for d in drones if d.in_flight),
        battery_mean=round(sum(d.battery for d in drones) / n, 3) if n else 0.0,
        battery_min=min((d.battery_min for d in drones), default=0.0),
        alerts_raised=len(agg.alerts),
    )


def table_key(fleet: str, minute: int) -> bytes:
    return f"{fleet}|{minute}".encode()


def parse_key(key: bytes) -> tuple[str, int]:
    fleet, _, minute = key.decode().rpartition("|")
    return fleet, int(minute)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(MinuteAgg)


def encode(agg: MinuteAgg) -> bytes:
    return _encoder.encode(agg)


def decode(raw: bytes) -> MinuteAgg:
    return _decoder.decode(raw)


def fold(
    states: Callable[[int], dict[str, MinuteAgg]],
    partials: Iterable[tuple[int, bytes, bytes]],
    keep_ms: int,
) -> dict[str, tuple[int, MinuteAgg | None]]:
    """Merge (partition, key, partial) into the partitions' minute states (in place). Returns
    what changed by key: the merged minute, or None for a minute that left the kept horizon
    (a tombstone). A partial for a minute already past the horizon is dropped."""
    changed: dict[str, tuple[int, MinuteAgg | None]] = {}
    touched: set[int] = set()
    for partition, raw_key, value in partials:
        state = states(partition)
        key = raw_key.decode()
        fleet, minute = parse_key(raw_key)
        if minute < _newest(state, fleet, minute) - keep_ms:
            continue
        old = state.get(key)
        agg = decode(value) if old is None else merge(old, decode(value))
        state[key] = agg
        changed[key] = (partition, agg)
        touched.add(partition)
    for partition in touched:
        state = states(partition)
        newest: dict[str, int] = {}
        for key in state:
            fleet, minute = parse_key(key.encode())
            newest[fleet] = max(minute, newest.get(fleet, minute))
        for key in list(state):
            fleet, minute = parse_key(key.encode())
            if minute < newest[fleet] - keep_ms:
                del state[key]
                changed[key] = (partition, None)
    return changed


def _newest(state: dict[str, MinuteAgg], fleet: str, default: int) -> int:
    prefix = f"{fleet}|"
    return max((int(k[len(prefix) :]) for k in state if k.startswith(prefix)), default=default)
