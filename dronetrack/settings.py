"""One typed, frozen settings object, read once from ``DRONETRACK_*`` environment variables.

Nothing else in the code base reads ``os.environ``: services receive a ``Settings``. The defaults
select the embedded pieces (Tansu broker, SQLite store, in-process cache) so that ``dronetrack run``
works on a bare machine; pointing a variable at real Kafka, Cassandra or Redis switches that piece.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PREFIX = "DRONETRACK_"
EMBEDDED = "embedded"
EMBEDDED_FETCH_MAX_WAIT_MS = 10
KAFKA_FETCH_MAX_WAIT_MS = 500


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _secret() -> Any:
    return field(default="", repr=False, metadata={"secret": True})


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of every service. Field ``x_y`` is read from ``DRONETRACK_X_Y``."""

    # Kafka. "embedded" means: `dronetrack run` starts a Tansu broker and fills in its address.
    kafka_bootstrap_servers: str = EMBEDDED
    # Where `dronetrack run` starts the embedded broker (0: any free port).
    embedded_broker_port: int = 9092
    # How long a fetch may wait for data; 0 chooses by broker kind (see __post_init__).
    kafka_fetch_max_wait_ms: int = 0
    kafka_topic_partitions: int = 4
    kafka_replication_factor: int = 1
    kafka_request_timeout_ms: int = 10_000
    # The idempotent producer keeps client retries from duplicating records. The embedded broker
    # does not implement InitProducerId, so the embedded run turns it off (the store's idempotent
    # writes absorb any duplicate a retry makes).
    kafka_idempotent_producer: bool = True

    # Store: "sqlite" (embedded) or "cassandra".
    store: str = "sqlite"
    sqlite_path: Path = Path("var/dronetrack.sqlite3")
    # Retention (a TTL, counted from when a row is written); 0 keeps rows for ever.
    store_track_ttl_s: int = 7 * 86_400
    store_alerts_ttl_s: int = 90 * 86_400
    store_stats_ttl_s: int = 90 * 86_400

    # Cassandra (DRONETRACK_STORE=cassandra). Contact points: host[,host...].
    cassandra_contact_points: str = ""
    cassandra_port: int = 9042
    cassandra_keyspace: str = "dronetrack"
    cassandra_local_dc: str = "datacenter1"
    # Used by `dronetrack db create-keyspace`; NetworkTopologyStrategy places the replicas in
    # cassandra_local_dc.
    cassandra_replication_strategy: str = "NetworkTopologyStrategy"
    cassandra_replication_factor: int = 3
    cassandra_read_consistency: str = "LOCAL_QUORUM"
    cassandra_write_consistency: str = "LOCAL_QUORUM"
    cassandra_username: str = ""
    cassandra_password: str = _secret()
    cassandra_tls: bool = False
    # CA bundle to verify the nodes with (empty: the system's); client cert/key for mutual TLS.
    cassandra_tls_ca_file: str = ""
    cassandra_tls_cert_file: str = ""
    cassandra_tls_key_file: str = ""
    cassandra_tls_check_hostname: bool = True
    cassandra_connect_timeout_s: float = 10.0
    cassandra_request_timeout_s: float = 10.0
    # In-flight writes per process: enough to keep every replica busy, few enough to never
    # overrun the driver's per-connection request limit.
    cassandra_max_concurrent_writes: int = 64

    # Logs of the services that `dronetrack run` starts.
    log_dir: Path = Path("var/log")

    # Cache shared by dashboard replicas; empty means an in-process cache.
    redis_url: str = _secret()

    # The fleet the dashboard shows and the one `dronetrack run` makes a demo ingest token for.
    default_fleet: str = "demo"

    ingest_host: str = "127.0.0.1"
    ingest_port: int = 8080
    ingest_max_body_bytes: int = 1_048_576
    ingest_max_batch_records: int = 1_000
    # How long a body may take to arrive once the headers have; slower is 408 (a trickling
    # client must not hold a connection and a request slot for ever).
    ingest_body_timeout_s: float = 30.0
    # Lines of "FLEET sha256:HEX" (a Kubernetes Secret mounted as a file); see docs/ingest.md.
    ingest_tokens_file: Path = Path("var/ingest-tokens")
    # How often ingest looks for added and removed tokens in that file (0: only at start-up).
    ingest_tokens_reload_s: float = 5.0
    # How long a request waits for the broker's acknowledgement before it gets 503.
    ingest_ack_deadline_ms: int = 5_000
    ingest_retry_after_s: int = 2
    # Per-fleet token bucket, in records per second (0: no limit); burst >= max batch records.
    ingest_rate_limit_rps: float = 50_000.0
    ingest_rate_limit_burst: int = 100_000
    # Event-time sanity: further ahead than this is rejected; older than max age is
    # rejected ("reject") or sent on with a `dronetrack-late` header ("mark").
    ingest_max_future_ms: int = 60_000
    ingest_max_age_ms: int = 7 * 86_400_000
    ingest_old_records: str = "mark"
    # How long SIGTERM waits for in-flight requests before the producer is flushed and closed.
    ingest_drain_s: float = 10.0

    streams_worker_id: str = "dronetrack-streams"
    streams_batch_max: int = 1_000
    streams_batch_window_ms: int = 20
    streams_web_host: str = "127.0.0.1"
    streams_web_port: int = 6066
    # Generous enough for a busy 2-core box; short enough that a crashed worker's partitions move.
    streams_session_timeout_ms: int = 10_000
    streams_data_dir: Path = Path("var/streams")
    # Battery alerts (percent): raise at or below the threshold, clear at or above the clear
    # level; the gap between the two is the hysteresis that stops an alert storm.
    streams_battery_low_pct: float = 20.0
    streams_battery_low_clear_pct: float = 25.0
    streams_battery_critical_pct: float = 10.0
    streams_battery_critical_clear_pct: float = 13.0
    # rapid_drain: battery lost per minute over the sliding window (raise / clear levels).
    streams_rapid_drain_pct_per_min: float = 6.0
    streams_rapid_drain_clear_pct_per_min: float = 4.0
    streams_rapid_drain_window_s: float = 60.0
    # link_lost: a flying drone that has sent nothing for this long.
    streams_link_lost_after_s: float = 30.0
    # A position jump implying more than this ground speed is flagged as implausible.
    streams_max_speed_mps: float = 150.0
    # Per-minute fleet statistics are kept (and late records merged) for this many minutes.
    streams_stats_keep_minutes: int = 10
    # Store writes are retried with exponential backoff up to this delay (until give-up below).
    streams_sink_backoff_max_ms: int = 5_000
    # /readyz turns red while a write has been failing (or hanging) for longer than this.
    streams_sink_stall_s: float = 30.0
    # A write still failing after this long stops the worker (exit 1), so that its supervisor
    # restarts it: a fresh producer and consumer, replaying from the last commit (0: never).
    streams_sink_give_up_s: float = 300.0
    # Flights. Without a declared status a drone is flying when it moves at or above this
    # speed or is this far above the altitude it last stood on the ground at.
    streams_flight_takeoff_speed_mps: float = 3.0
    streams_flight_takeoff_climb_m: float = 5.0
    # A flight also ends when the drone sends nothing for this long (by event time).
    streams_flight_link_lost_after_s: float = 120.0

    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8000
    dashboard_refresh_ms: int = 2_000
    dashboard_tile_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    # A drone silent this long turns grey on the map; silent this long, it leaves the map.
    dashboard_stale_after_s: float = 15.0
    dashboard_lost_after_s: float = 300.0
    # How long live reads (latest state, recent alerts, stats) are served from the cache.
    dashboard_cache_ttl_ms: int = 1_000
    # HMAC key of the session cookies; replicas must share it. Empty: a random key per process.
    dashboard_session_secret: str = _secret()
    dashboard_session_max_age_s: int = 43_200
    # Trust X-Forwarded-Proto and X-Forwarded-For from a TLS-terminating proxy (session
    # cookies marked Secure; failed logins counted by the client's address, not the proxy's).
    dashboard_trust_proxy: bool = False
    # Failed logins allowed per user name, and per client address, in a window of this many
    # seconds; past either, logins are refused (429) until the window ends. 0 turns one off.
    dashboard_login_failures_per_name: int = 10
    dashboard_login_failures_per_address: int = 50
    dashboard_login_window_s: int = 900
    # A local raster tile set (an MBTiles file) for the base map, served at /tiles/: the map
    # works without internet. Empty: tiles come from DRONETRACK_DASHBOARD_TILE_URL.
    dashboard_tiles_mbtiles: str = ""
    # The most track points one export (GPX, KML, GeoJSON, CSV) may hold; past it, a 422.
    dashboard_export_max_points: int = 100_000

    # The MAVLink bridge (`dronetrack bridge mavlink`), run beside the drones' ground link.
    # Links, comma-separated: udp:HOST:PORT (listen), tcp:HOST:PORT (connect), serial:DEV[:BAUD].
    bridge_connect: str = "udp:0.0.0.0:14550"
    bridge_ingest_url: str = "http://127.0.0.1:8080"
    # A file holding the fleet's ingest token (a Secret mounted as a file, or 0600 on disk).
    bridge_token_file: Path = Path("var/bridge-token")
    # Records per drone per second at most: the latest position wins, so no stale backlog.
    bridge_rate_hz: float = 1.0
    bridge_batch_records: int = 500
    # The on-disk queue every record passes through; past the bound the oldest are dropped.
    bridge_queue_path: Path = Path("var/bridge-queue.sqlite3")
    bridge_queue_max_records: int = 1_000_000
    # Drone ids: "SYSID=ID,..." for the vehicles named here, prefix + system id for the rest.
    bridge_drone_ids: str = ""
    bridge_drone_prefix: str = "mav-"
    bridge_backoff_max_s: float = 30.0
    bridge_metrics_host: str = "127.0.0.1"
    bridge_metrics_port: int = 9109

    # The notifier (docs/notifications.md): alert events to each fleet's webhooks and e-mail.
    notify_host: str = "127.0.0.1"
    notify_port: int = 6070
    notify_group: str = "dronetrack-notifier"
    # Where a new consumer group starts: "latest" (a first start does not replay the topic's
    # history to the receivers) or "earliest".
    notify_offset_reset: str = "latest"
    # Fernet key (urlsafe base64 of 32 bytes) that seals webhook secrets in the store.
    notify_secret_key: str = _secret()
    # Attempts per event and channel before it goes to the dead-letter topic; the backoff
    # between them doubles from the base up to the max, with full jitter.
    notify_max_attempts: int = 8
    notify_backoff_base_ms: int = 500
    notify_backoff_max_ms: int = 60_000
    notify_timeout_s: float = 10.0
    # Per-channel rate cap (deliveries per second, 0: none) and burst.
    notify_rate_per_s: float = 20.0
    notify_rate_burst: int = 40
    # Events waiting for one channel at most; past it they are dead-lettered at once, so a
    # dead receiver never stops the consumer (and with it every other channel).
    notify_channel_queue_max: int = 10_000
    # How long a fleet's channels are taken from memory before the store is read again.
    notify_channels_cache_s: float = 5.0
    notify_smtp_host: str = ""
    notify_smtp_port: int = 587
    notify_smtp_starttls: bool = True
    # CA bundle to verify the SMTP relay's certificate with (empty: the system's).
    notify_smtp_ca_file: str = ""
    notify_smtp_username: str = ""
    notify_smtp_password: str = _secret()
    notify_smtp_from: str = "dronetrack@localhost"

    sim_drones: int = 12
    sim_rate_hz: float = 1.0
    sim_ingest_url: str = "http://127.0.0.1:8080"
    sim_token: str = _secret()

    # `dronetrack run`'s own /metrics, /healthz and /readyz (service restarts); 0: any free port.
    run_web_host: str = "127.0.0.1"
    run_web_port: int = 6067

    log_level: str = "INFO"

    def __post_init__(self) -> None:
        """Choose the fetch wait for the broker kind, once: the embedded broker holds every fetch
        until the wait expires, so a short wait bounds latency there; real Kafka answers a fetch
        as soon as data arrives, so a long wait only saves idle polling (measured idle on Kafka:
        the worker at 8-9 % of a core and the broker at 7-8 % with 10 ms, 3 % and 1.5 % with
        500 ms). Chosen here, a copy pointed at the embedded broker's address (what
        `dronetrack run` hands its services) keeps the embedded broker's wait."""
        if self.kafka_fetch_max_wait_ms == 0:
            wait = EMBEDDED_FETCH_MAX_WAIT_MS if self.kafka_embedded else KAFKA_FETCH_MAX_WAIT_MS
            object.__setattr__(self, "kafka_fetch_max_wait_ms", wait)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from a mapping (default: the process environment)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = PREFIX + f.name.upper()
            if name in env:
                values[f.name] = _parse(name, env[name], f.type)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        return {PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}

    @property
    def kafka_embedded(self) -> bool:
        return self.kafka_bootstrap_servers == EMBEDDED

    def require_kafka(self) -> str:
        """The bootstrap servers, or a clear error when none were given to a lone service."""
        if self.kafka_embedded:
            raise SettingsError(
                f"{PREFIX}KAFKA_BOOTSTRAP_SERVERS is not set: point it at a Kafka cluster "
                "(host:port[,host:port]) or start everything with `dronetrack run`"
            )
        return self.kafka_bootstrap_servers


def _parse(name: str, raw: str, type_: Any) -> Any:
    if str(type_) == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}={raw!r} is not a boolean (true/false)")
    kind = {"int": int, "float": float, "Path": Path, "str": str}.get(str(type_), str)
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if kind in (int, float) and value < 0:
        raise SettingsError(f"{name}={raw!r} must not be negative")
    return value
