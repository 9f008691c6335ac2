"""Values of the topics the stream worker writes: ``drone.alerts.v1``, ``drone.latest.v1`` and
``drone.flights.v1`` (its value is the store's ``Flight``).

Like the telemetry record, these msgspec structs are the single source of truth: the worker
encodes with them and the JSON Schemas in docs/schemas are generated from them
(``dronetrack schema``). Consumers should tolerate unknown fields (additive changes keep v1).

The structs are declared ``gc=False``: they never form reference cycles, and a worker holds one
state per drone, so keeping them out of the cyclic garbage collector's scans halves the cost of
processing a record (measured).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from dronetrack.record import Telemetry
from dronetrack.store import Alert, AlertType, Flight, Severity

AlertTransition = Literal["raised", "cleared"]


class AlertEvent(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One alert raised or cleared. ``alert_id`` is deterministic, so a worker that replays
    records after a crash emits the same id again: consumers deduplicate on
    (``fleet``, ``alert_id``, ``event``), since two fleets may name a drone alike."""

    event: AlertTransition
    alert_id: str
    fleet: str
    drone_id: str
    type: AlertType
    severity: Severity
    raised_at: int  # event time the alert was raised, epoch ms
    at: int  # event time of this transition (== raised_at for "raised"), epoch ms
    detail: str = ""

    def to_row(self) -> Alert:
        """The store row this event upserts."""
        return Alert(
            fleet=self.fleet,
            drone_id=self.drone_id,
            alert_id=self.alert_id,
            type=self.type,
            severity=self.severity,
            raised_at=self.raised_at,
            detail=self.detail,
            cleared_at=self.at if self.event == "cleared" else None,
        )


class ActiveAlert(msgspec.Struct, kw_only=True, gc=False):
    raised_at: int
    detail: str = ""


class FlightProgress(msgspec.Struct, kw_only=True, gc=False):
    """The flight a drone is in, as far as the worker has seen it (part of its state, so a
    worker taking over the drone continues the same flight)."""

    start: int
    battery_start_pct: float
    max_alt_m: float
    max_speed_mps: float
    distance_m: float = 0.0
    points: int = 1
    # The last plausible position the distance was measured to (three fields, not a tuple: one
    # allocation less per record).
    fix_ts: int
    fix_lat: float
    fix_lon: float
    alert_ids: list[str] = msgspec.field(default_factory=list)


def drone_key(fleet: str, drone_id: str) -> str:
    """A drone's identity: ``FLEET/DRONE_ID``. Drone ids are each fleet's own, so two fleets
    may both fly an ``alpha-1``; this is the key of ``drone.latest.v1`` and of the worker's
    state. Neither part can hold a ``/``."""
    return f"{fleet}/{drone_id}"


class LatestState(Telemetry, kw_only=True, omit_defaults=True, gc=False):
    """A drone's newest record (by event time, then ``seq``) plus what the worker derived.

    The worker also restores its per-drone state from this compacted topic when it is assigned
    a partition, which is why the drain checkpoints travel with it."""

    # Active alerts of this drone by type (one per type at most).
    active_alerts: dict[AlertType, ActiveAlert] = msgspec.field(default_factory=dict)
    # Set when the jump from the previous record implies more than the configured max speed.
    implausible_speed_mps: float | None = None
    # Battery checkpoints [[ts, pct], ...] over the rapid-drain window, oldest first.
    drain_checkpoints: list[tuple[int, float]] = msgspec.field(default_factory=list)
    # The flight in progress, if any (absent in states written before flights existed).
    flight: FlightProgress | None = None
    # Altitude of the last record on the ground: take-off and landing without a status are
    # judged against it.
    ground_alt_m: float | None = None


_alert_encoder = msgspec.json.Encoder()
_alert_decoder = msgspec.json.Decoder(AlertEvent)
_latest_decoder = msgspec.json.Decoder(LatestState)
_flight_decoder = msgspec.json.Decoder(Flight)


def encode(value: AlertEvent | LatestState | Flight) -> bytes:
    return _alert_encoder.encode(value)


def decode_alert(value: bytes) -> AlertEvent:
    return _alert_decoder.decode(value)


def decode_latest(value: bytes) -> LatestState:
    return _latest_decoder.decode(value)


def decode_flight(value: bytes) -> Flight:
    return _flight_decoder.decode(value)


def json_schemas() -> dict[str, dict[str, Any]]:
    return {
        "alert-event-v1.json": msgspec.json.schema(AlertEvent),
        "latest-v1.json": msgspec.json.schema(LatestState),
        "flight-v1.json": msgspec.json.schema(Flight),
    }
