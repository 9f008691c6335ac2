"""One batch of raw topic records in, everything the worker must write out: pure, no I/O.

The agent hands each batch here and gives the result to the sink, so a batch is decoded once,
every drone's state is advanced once per record, and the outputs are grouped for batched writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from dronetrack import record, topics
from dronetrack.events import AlertEvent, LatestState, drone_key
from dronetrack.record import Telemetry
from dronetrack.store import Flight
from streams import flights
from streams.alerts import Rules, apply, check_link
from streams.flights import FlightRules
from streams.windows import Partials


@dataclass(frozen=True, slots=True)
class Raw:
    """A record as it came off the topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True, slots=True)
class Dead:
    """A record that cannot be processed, and why."""

    raw: Raw
    reason: str

    def headers(self) -> list[tuple[str, bytes]]:
        """The dead letter's headers: the original record's, unchanged and first (a consumer
        of dead letters sees what the producer sent, e.g. ``dronetrack-late``), then where the
        record was and why it failed."""
        return [
            *self.raw.headers,
            (topics.DLQ_REASON, self.reason.encode()),
            (topics.DLQ_TOPIC, topics.TELEMETRY.encode()),
            (topics.DLQ_PARTITION, str(self.raw.partition).encode()),
            (topics.DLQ_OFFSET, str(self.raw.offset).encode()),
        ]


@dataclass
class Output:
    records: list[Telemetry] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)
    # (partition, flight) of the flights finished in this batch: published to the drone's
    # partition, as its latest state is.
    flights: list[tuple[int, Flight]] = field(default_factory=list)
    # (partition, state) by drone key (events.drone_key): each drone's newest state after the
    # batch, once.
    latest: dict[str, tuple[int, LatestState]] = field(default_factory=dict)
    partials: Partials = field(default_factory=Partials)
    dead: list[Dead] = field(default_factory=list)
    out_of_order: int = 0
    implausible: int = 0

    def add_alerts(self, events: list[AlertEvent]) -> None:
        self.alerts.extend(events)
        raised = [(e.alert_id, e.raised_at) for e in events if e.event == "raised"]
        if raised:
            self.partials.add_alerts(events[0].fleet, raised)


States = Callable[[int], dict[str, LatestState]]
HISTORY = (topics.BACKFILL_HEADER, b"1")


def process(
    batch: Sequence[Raw], states: States, rules: Rules, flight_rules: FlightRules | None = None
) -> Output:
    """Decode, advance each drone's state (in ``states(partition)``, updated in place) and
    collect the outputs. A record that fails here is dead-lettered; the batch goes on."""
    out = Output()
    for raw in batch:
        try:
            rec = record.decode_topic(raw.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            out.dead.append(Dead(raw, f"undecodable: {exc}"))
            continue
        if HISTORY in raw.headers:  # an imported past flight: stored, never live
            out.records.append(rec)
            out.partials.add_record(rec)
            continue
        key = drone_key(rec.fleet, rec.drone_id)
        try:
            drones = states(raw.partition)
            prev = drones.get(key)
            state, events = apply(prev, rec, rules)
            if state is not None and flight_rules is not None:
                state, finished = flights.step(prev, state, events, flight_rules)
                if finished:
                    out.flights.extend((raw.partition, f) for f in finished)
        except Exception as exc:  # a bug must not stop the stream: park the record, go on
            out.dead.append(Dead(raw, f"processing failed: {type(exc).__name__}: {exc}"))
            continue
        out.records.append(rec)
        out.partials.add_record(rec)
        if state is None:
            out.out_of_order += 1
            continue
        drones[key] = state
        out.latest[key] = (raw.partition, state)
        if state.implausible_speed_mps is not None:
            out.implausible += 1
        if events:
            out.add_alerts(events)
    return out


def check_links(
    partitions: dict[int, dict[str, LatestState]],
    now_ms: int,
    rules: Rules,
    flight_rules: FlightRules | None = None,
) -> Output:
    """The timer's pass: raise ``link_lost`` for silent flying drones of these partitions and
    end their flights once silent for the flight rules' link-lost time."""
    out = Output()
    for partition, drones in partitions.items():
        for key, state in list(drones.items()):
            new, events = check_link(state, now_ms, rules)
            if new is not None:
                new = flights.add_alerts(new, events)
                out.add_alerts(events)
            if flight_rules is not None:
                ended = flights.check_link(new or state, now_ms, flight_rules)
                if ended is not None:
                    new, done = ended
                    out.flights.append((partition, done))
            if new is not None:
                drones[key] = new
                out.latest[key] = (partition, new)
    return out
