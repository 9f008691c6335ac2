"""Every CQL statement the Cassandra adapter runs, in one place, so that the unit tests can
check each against the tables of the migration files (full partition key restricted, clustering
order respected, no ALLOW FILTERING, idempotent writes) without a cluster.

All statements are idempotent and prepared as such: no counters, no list appends, no
lightweight transactions; a DELETE removes one whole row (idempotent too). ``USING TIMESTAMP``
makes two kinds of write order-independent: latest state (event time wins) and
acknowledgements (the earliest wins).
"""

from __future__ import annotations

import re
from typing import Final

_TRACK_COLUMNS = "ts, lat, lon, alt_m, speed_mps, heading_deg, battery_pct, seq"
_ALERT_VALUES = "drone_id, type, severity, detail, cleared_at, acknowledged_at, acknowledged_by"
_STATS_COLUMNS = "minute, drones_active, drones_in_flight, battery_mean, battery_min, alerts_raised"
_USER_COLUMNS = "name, password_hash, fleets, disabled"
# put_user leaves sessions_valid_after alone: a new password keeps a sign-out in force.
_USER_READ = f"{_USER_COLUMNS}, sessions_valid_after"
_CHANNEL_COLUMNS = (
    "channel_id, kind, target, format, secret_box, alert_types, severities, created_at"
)

_FLIGHT_COLUMNS = (
    "started_at, ended_at, duration_ms, ended_by, distance_m, max_alt_m, max_speed_mps,"
    " battery_start_pct, battery_end_pct, battery_used_pct_per_min, points, alert_ids"
)

# Statements the migration runner needs before any migration has run.
CREATE_MIGRATIONS_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " scope text, version int, name text, applied_at timestamp,"
    " PRIMARY KEY ((scope), version)) WITH CLUSTERING ORDER BY (version DESC)"
)
MIGRATION_SCOPE: Final = "dronetrack"
USERS_DIRECTORY: Final = "dashboard"

STATEMENTS: Final[dict[str, str]] = {
    # -- schema versions -------------------------------------------------------------------
    "schema_version": "SELECT version FROM schema_migrations WHERE scope = ? LIMIT 1",
    "record_migration": (
        "INSERT INTO schema_migrations (scope, version, name, applied_at) VALUES (?, ?, ?, ?)"
    ),
    # -- telemetry -------------------------------------------------------------------------
    "upsert_latest": (
        "INSERT INTO latest_state (fleet, drone_id, ts, record) VALUES (?, ?, ?, ?)"
        " USING TIMESTAMP ?"
    ),
    "latest": "SELECT record FROM latest_state WHERE fleet = ?",
    "drone": "SELECT record FROM latest_state WHERE fleet = ? AND drone_id = ?",
    "insert_track": (
        f"INSERT INTO track_points (fleet, drone_id, day, {_TRACK_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
    ),
    "track_day": (
        f"SELECT {_TRACK_COLUMNS} FROM track_points"
        " WHERE fleet = ? AND drone_id = ? AND day = ? AND ts >= ? AND ts < ?"
        " ORDER BY ts DESC LIMIT ?"
    ),
    # -- the days a series has rows on -------------------------------------------------------
    "mark_day": "INSERT INTO series_days (fleet, series, day) VALUES (?, ?, ?) USING TTL ?",
    "days_desc": (
        "SELECT day FROM series_days WHERE fleet = ? AND series = ? AND day >= ? AND day <= ?"
    ),
    # -- alerts ----------------------------------------------------------------------------
    "insert_alert": (
        "INSERT INTO alerts (fleet, alert_id, drone_id, type, severity, raised_at, detail,"
        " cleared_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
    ),
    "insert_alert_by_day": (
        "INSERT INTO alerts_by_fleet_day (fleet, day, raised_at, alert_id, drone_id, type,"
        " severity, detail, cleared_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
    ),
    "insert_alert_by_drone": (
        "INSERT INTO alerts_by_drone (fleet, drone_id, raised_at, alert_id, type, severity,"
        " detail, cleared_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
    ),
    "alert": (
        f"SELECT raised_at, {_ALERT_VALUES}, TTL(type) FROM alerts WHERE fleet = ? AND alert_id = ?"
    ),
    "alerts_day": (
        f"SELECT raised_at, alert_id, {_ALERT_VALUES} FROM alerts_by_fleet_day"
        " WHERE fleet = ? AND day = ? AND raised_at >= ? AND raised_at < ? LIMIT ?"
    ),
    "drone_alerts": (
        f"SELECT raised_at, alert_id, {_ALERT_VALUES.replace('drone_id, ', '')}"
        " FROM alerts_by_drone WHERE fleet = ? AND drone_id = ? LIMIT ?"
    ),
    "ack_alert": (
        "UPDATE alerts USING TTL ? AND TIMESTAMP ? SET acknowledged_at = ?, acknowledged_by = ?"
        " WHERE fleet = ? AND alert_id = ?"
    ),
    "ack_alert_by_day": (
        "UPDATE alerts_by_fleet_day USING TTL ? AND TIMESTAMP ?"
        " SET acknowledged_at = ?, acknowledged_by = ?"
        " WHERE fleet = ? AND day = ? AND raised_at = ? AND alert_id = ?"
    ),
    "ack_alert_by_drone": (
        "UPDATE alerts_by_drone USING TTL ? AND TIMESTAMP ?"
        " SET acknowledged_at = ?, acknowledged_by = ?"
        " WHERE fleet = ? AND drone_id = ? AND raised_at = ? AND alert_id = ?"
    ),
    # -- fleet statistics ------------------------------------------------------------------
    "upsert_stats": (
        f"INSERT INTO fleet_stats (fleet, day, {_STATS_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
    ),
    "stats_day": (
        f"SELECT {_STATS_COLUMNS} FROM fleet_stats"
        " WHERE fleet = ? AND day = ? AND minute >= ? AND minute < ?"
    ),
    # -- users -----------------------------------------------------------------------------
    "put_user": (f"INSERT INTO users (directory, {_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?)"),
    "user": f"SELECT {_USER_READ} FROM users WHERE directory = ? AND name = ?",
    "users": f"SELECT {_USER_READ} FROM users WHERE directory = ?",
    "disable_user": "UPDATE users SET disabled = true WHERE directory = ? AND name = ?",
    # The write time is the sign-out's own (µs), so the latest sign-out wins in any order.
    "end_sessions": (
        "UPDATE users USING TIMESTAMP ? SET sessions_valid_after = ?"
        " WHERE directory = ? AND name = ?"
    ),
    # -- failed logins ---------------------------------------------------------------------
    "login_event": (
        "INSERT INTO login_failures (scope, at, id, cleared) VALUES (?, ?, ?, ?) USING TTL ?"
    ),
    "login_events": "SELECT at, cleared FROM login_failures WHERE scope = ? AND at > ? LIMIT ?",
    # -- notification channels (one partition per fleet) -------------------------------------
    "put_channel": (
        f"INSERT INTO notify_channels (fleet, {_CHANNEL_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "channels": f"SELECT {_CHANNEL_COLUMNS} FROM notify_channels WHERE fleet = ?",
    "channel": "SELECT kind FROM notify_channels WHERE fleet = ? AND channel_id = ?",
    "remove_channel": "DELETE FROM notify_channels WHERE fleet = ? AND channel_id = ?",
    # -- flights (one partition per drone, newest first) -----------------------------------
    "upsert_flight": (
        f"INSERT INTO flights (fleet, drone_id, {_FLIGHT_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "flights": (
        f"SELECT {_FLIGHT_COLUMNS} FROM flights WHERE fleet = ? AND drone_id = ?"
        " AND started_at >= ? AND started_at < ? LIMIT ?"
    ),
    "flight": (
        f"SELECT {_FLIGHT_COLUMNS} FROM flights WHERE fleet = ? AND drone_id = ? AND started_at = ?"
    ),
}


_TABLE_NAME = re.compile(r"\b(TABLE IF NOT EXISTS|TABLE|INTO|UPDATE|FROM) (\w+)\b(?!\.)")


def qualify(statement: str, keyspace: str) -> str:
    """The statement with its table named ``keyspace.table``. Sessions are never bound to a
    keyspace: with prepared statements the server warns that ``USE`` is ambiguous, and names
    every table instead."""
    return _TABLE_NAME.sub(rf"\1 {keyspace}.\2", statement, count=1)
