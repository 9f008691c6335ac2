"""The store port: the few reads and writes the services need, whatever holds the tables.

Adapters: ``sqlite`` (embedded default) and ``cassandra``. Every write is idempotent: replaying a
record leaves the tables as they were, so at-least-once delivery from Kafka neither loses nor
duplicates anything.
Every read names the fleet, so one fleet never sees another's rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec

from dronetrack.record import Telemetry
from dronetrack.settings import Settings

AlertType = Literal["battery_low", "battery_critical", "rapid_drain", "link_lost"]
Severity = Literal["warning", "critical"]
AlertState = Literal["active", "acknowledged", "cleared"]


class TrackPoint(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One point of a flight track (what a map trail and a battery chart need)."""

    ts: int
    lat: float
    lon: float
    alt_m: float
    speed_mps: float
    heading_deg: float
    battery_pct: float
    seq: int | None = None


def alert_id(drone_id: str, type_: AlertType, raised_at: int) -> str:
    """Deterministic, so a replayed raise or clear writes the same row again."""
    return f"{drone_id}:{type_}:{raised_at}"


class Alert(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One alert's lifecycle: raised (active) -> acknowledged by a user -> cleared.

    The stream worker writes the raise and the clear; the dashboard writes the acknowledgement.
    They touch different columns, so neither overwrites the other.
    """

    fleet: str
    drone_id: str
    alert_id: str
    type: AlertType
    severity: Severity
    raised_at: int  # event time, epoch ms
    detail: str = ""
    cleared_at: int | None = None
    acknowledged_at: int | None = None
    acknowledged_by: str | None = None

    @property
    def state(self) -> AlertState:
        if self.cleared_at is not None:
            return "cleared"
        return "acknowledged" if self.acknowledged_at is not None else "active"


FlightEnd = Literal["landed", "link_lost"]


def flight_id(fleet: str, drone_id: str, start_ms: int) -> str:
    """Deterministic (``FLEET/DRONE_ID/START_MS``), so a replay writes the same flight again."""
    return f"{fleet}/{drone_id}/{start_ms}"


def parse_flight_id(fleet: str, flight_id: str) -> tuple[str, int] | None:
    """(drone_id, start_ms) of a flight id of ``fleet``, or None if it is not one."""
    drone_id, _, start = flight_id.removeprefix(f"{fleet}/").rpartition("/")
    if not flight_id.startswith(f"{fleet}/") or not drone_id or "/" in drone_id:
        return None
    return (drone_id, int(start)) if start.isdigit() else None


class Flight(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One finished flight of a drone, from take-off to landing (or to the last record before
    its link was lost), as the stream worker summarised it."""

    fleet: str
    drone_id: str
    flight_id: str
    start: int  # event time of the take-off record, epoch ms
    end: int  # event time of the landing record (or of the last one heard), epoch ms
    duration_ms: int
    ended_by: FlightEnd
    distance_m: float  # great-circle sum between consecutive plausible positions
    max_alt_m: float
    max_speed_mps: float
    battery_start_pct: float
    battery_end_pct: float
    # Battery used per minute of flight (None for a flight of no duration).
    battery_used_pct_per_min: float | None = None
    points: int = 0  # records the summary was made of
    alert_ids: list[str] = msgspec.field(default_factory=list)  # raised during the flight


class FleetStats(msgspec.Struct, kw_only=True):
    """Fleet statistics over one tumbling minute (``minute`` is its start, epoch ms)."""

    fleet: str
    minute: int
    drones_active: int
    drones_in_flight: int
    battery_mean: float
    battery_min: float
    alerts_raised: int


class User(msgspec.Struct, kw_only=True):
    """A dashboard user. ``password_hash`` is a memory-hard KDF's encoded output.
    ``sessions_valid_after`` (epoch ms) voids every session issued at or before it: signing out
    sets it, so no copy of a signed-out cookie works, on any replica, after any cache loss."""

    name: str
    password_hash: str
    fleets: list[str]
    disabled: bool = False
    sessions_valid_after: int = 0


def failures_since_clearing(events: Iterable[tuple[int, bool]]) -> list[int]:
    """The failure times of (time, cleared) login events read newest first, up to the first
    clearing: what ``Store.login_failures`` returns, in one place for every adapter."""
    found = []
    for at, cleared in events:
        if cleared:
            break
        found.append(at)
    return found


ChannelKind = Literal["webhook", "email"]
ChannelFormat = Literal["json", "slack"]


class Channel(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where a fleet's alerts are delivered, and which of them (its rule): an alert goes to the
    channel when its type is in ``alert_types`` and its severity in ``severities`` (an empty
    list: any). ``secret_box`` is a webhook's signing secret encrypted under the notifier's key
    (notifier/secrets.py): the store never holds it in clear, and ``public()`` (what listings
    show) leaves it out."""

    fleet: str
    channel_id: str
    kind: ChannelKind
    target: str  # the URL of a webhook, the address of an e-mail channel
    created_at: int  # epoch ms
    format: ChannelFormat = "json"
    secret_box: str = ""
    alert_types: list[str] = msgspec.field(default_factory=list)
    severities: list[str] = msgspec.field(default_factory=list)

    def __repr__(self) -> str:
        return f"Channel({self.fleet}/{self.channel_id} {self.kind} {self.target})"

    def matches(self, type_: str, severity: str) -> bool:
        return (not self.alert_types or type_ in self.alert_types) and (
            not self.severities or severity in self.severities
        )

    def public(self) -> dict[str, object]:
        """The channel as listings show it: everything but the secret."""
        shown = msgspec.structs.asdict(self)
        shown.pop("secret_box")
        shown["signed"] = bool(self.secret_box)
        return shown


class StoreError(RuntimeError):
    """The store refused or failed an operation."""


class StoreUnavailable(StoreError):
    """The store cannot be reached; the message says where it was looked for and what to set."""


class SchemaOutdated(StoreError):
    """The store's schema is older than this code: run ``dronetrack db migrate``."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How long rows live after they are written, in seconds (0: for ever). Cassandra applies it
    as a TTL; SQLite stores an expiry time, hides expired rows and purges them."""

    track_s: int
    alerts_s: int
    stats_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        return cls(
            track_s=settings.store_track_ttl_s,
            alerts_s=settings.store_alerts_ttl_s,
            stats_s=settings.store_stats_ttl_s,
        )


class Store(Protocol):
    async def open(self) -> None:
        """Connect and make sure the schema exists."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the store cannot serve a query (readiness)."""

    # -- telemetry --------------------------------------------------------------------------
    async def write_telemetry(self, records: Sequence[Telemetry]) -> None:
        """Upsert latest state (never moving a drone backwards in time) and track points."""

    async def latest(self, fleet: str) -> list[Telemetry]:
        """The latest state of every drone of a fleet, ordered by drone id."""

    async def drone(self, fleet: str, drone_id: str) -> Telemetry | None: ...

    async def track(
        self,
        fleet: str,
        drone_id: str,
        *,
        limit: int = 1_000,
        before_ms: int | None = None,
        since_ms: int | None = None,
    ) -> list[TrackPoint]:
        """Track points of one drone, newest first: ``since_ms <= ts < before_ms``."""

    # -- alerts -----------------------------------------------------------------------------
    async def write_alerts(self, alerts: Sequence[Alert]) -> None:
        """Upsert raises and clears by (fleet, alert_id); a clear is never undone, an
        acknowledgement is never overwritten."""

    async def alerts(
        self, fleet: str, *, since_ms: int, until_ms: int, limit: int = 500
    ) -> list[Alert]:
        """A fleet's alerts raised in ``[since_ms, until_ms)``, newest first."""

    async def drone_alerts(self, fleet: str, drone_id: str, *, limit: int = 100) -> list[Alert]:
        """One drone's alerts, newest first."""

    async def acknowledge_alert(
        self, fleet: str, alert_id: str, user: str, at_ms: int
    ) -> Alert | None:
        """Mark an alert acknowledged (the first acknowledgement wins); None if unknown."""

    # -- flights ----------------------------------------------------------------------------
    async def write_flights(self, flights: Sequence[Flight]) -> None:
        """Upsert finished flights by (fleet, flight_id): a replay writes the same row again."""

    async def flights(
        self,
        fleet: str,
        drone_id: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 100,
    ) -> list[Flight]:
        """One drone's flights that started in ``[since_ms, until_ms)``, newest first."""

    async def flight(self, fleet: str, flight_id: str) -> Flight | None:
        """One flight by its id, or None."""

    # -- fleet statistics -------------------------------------------------------------------
    async def write_fleet_stats(self, stats: Sequence[FleetStats]) -> None:
        """Upsert by (fleet, minute): a recomputed minute replaces the earlier figures."""

    async def fleet_stats(self, fleet: str, *, since_ms: int, until_ms: int) -> list[FleetStats]:
        """Minutes starting in ``[since_ms, until_ms)``, oldest first."""

    # -- users ------------------------------------------------------------------------------
    async def put_user(self, user: User) -> None: ...

    async def get_user(self, name: str) -> User | None: ...

    async def list_users(self) -> list[User]:
        """Every user, ordered by name."""

    async def disable_user(self, name: str) -> bool:
        """Refuse the user's logins from now on; False if there is no such user."""

    async def end_sessions(self, name: str, at_ms: int) -> bool:
        """Void the user's sessions issued at or before ``at_ms`` (the latest such time wins,
        whatever order calls arrive in; ``put_user`` keeps it); False if there is no such user."""

    # -- failed logins (security state: durable, unlike the cache) ---------------------------
    async def note_login_failure(self, scope: str, at_ms: int, *, window_s: int) -> None:
        """Record a failed login in ``scope`` (e.g. a hashed name), kept for ``window_s``."""

    async def clear_login_failures(self, scope: str, at_ms: int, *, window_s: int) -> None:
        """Forget ``scope``'s failures up to ``at_ms`` (a successful login)."""

    async def login_failures(self, scope: str, *, since_ms: int, limit: int) -> list[int]:
        """Times (epoch ms, newest first) of at most ``limit`` failures in ``scope`` after
        ``since_ms`` and after its last clearing."""

    # -- notification channels --------------------------------------------------------------
    async def put_channel(self, channel: Channel) -> None:
        """Create or replace a channel (by fleet and channel id)."""

    async def channels(self, fleet: str) -> list[Channel]:
        """A fleet's channels, ordered by channel id."""

    async def remove_channel(self, fleet: str, channel_id: str) -> bool:
        """Delete a channel; False if there was none."""

    # -- retention --------------------------------------------------------------------------
    async def purge_expired(self) -> int:
        """Delete rows past their retention now; the number deleted (Cassandra's TTL needs no
        help, so its adapter returns 0)."""


def open_store(settings: Settings) -> Store:
    """The adapter the settings select (not yet opened)."""
    if settings.store == "sqlite":
        from dronetrack.store.sqlite import SqliteStore

        return SqliteStore(settings.sqlite_path, retention=Retention.from_settings(settings))
    if settings.store == "cassandra":
        from dronetrack.store.cassandra import CassandraStore

        return CassandraStore(settings)
    raise ValueError(
        f"DRONETRACK_STORE={settings.store!r}: supported stores are 'sqlite' and 'cassandra'"
    )
