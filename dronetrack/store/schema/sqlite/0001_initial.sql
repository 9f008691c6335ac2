-- Embedded store schema (SQLite). Mirrors the Cassandra tables' keys: every read names fleet.
CREATE TABLE IF NOT EXISTS latest_state (
    fleet               TEXT    NOT NULL,
    drone_id            TEXT    NOT NULL,
    ts                  INTEGER NOT NULL,
    lat                 REAL    NOT NULL,
    lon                 REAL    NOT NULL,
    alt_m               REAL    NOT NULL,
    speed_mps           REAL    NOT NULL,
    heading_deg         REAL    NOT NULL,
    battery_pct         REAL    NOT NULL,
    status              TEXT,
    seq                 INTEGER,
    vertical_speed_mps  REAL,
    h_accuracy_m        REAL,
    v_accuracy_m        REAL,
    received_at         INTEGER NOT NULL,
    PRIMARY KEY (fleet, drone_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS track_points (
    fleet        TEXT    NOT NULL,
    drone_id     TEXT    NOT NULL,
    ts           INTEGER NOT NULL,
    lat          REAL    NOT NULL,
    lon          REAL    NOT NULL,
    alt_m        REAL    NOT NULL,
    speed_mps    REAL    NOT NULL,
    heading_deg  REAL    NOT NULL,
    battery_pct  REAL    NOT NULL,
    seq          INTEGER,
    PRIMARY KEY (fleet, drone_id, ts)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS alerts (
    fleet            TEXT    NOT NULL,
    alert_id         TEXT    NOT NULL,
    drone_id         TEXT    NOT NULL,
    type             TEXT    NOT NULL,
    severity         TEXT    NOT NULL,
    raised_at        INTEGER NOT NULL,
    detail           TEXT    NOT NULL DEFAULT '',
    cleared_at       INTEGER,
    acknowledged_at  INTEGER,
    acknowledged_by  TEXT,
    PRIMARY KEY (fleet, alert_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alerts_by_fleet_time ON alerts (fleet, raised_at DESC);
CREATE INDEX IF NOT EXISTS alerts_by_drone ON alerts (fleet, drone_id, raised_at DESC);

CREATE TABLE IF NOT EXISTS fleet_stats (
    fleet             TEXT    NOT NULL,
    minute            INTEGER NOT NULL,
    drones_active     INTEGER NOT NULL,
    drones_in_flight  INTEGER NOT NULL,
    battery_mean      REAL    NOT NULL,
    battery_min       REAL    NOT NULL,
    alerts_raised     INTEGER NOT NULL,
    PRIMARY KEY (fleet, minute)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS users (
    name           TEXT    NOT NULL PRIMARY KEY,
    password_hash  TEXT    NOT NULL,
    fleets         TEXT    NOT NULL,  -- JSON array
    disabled       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
