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
