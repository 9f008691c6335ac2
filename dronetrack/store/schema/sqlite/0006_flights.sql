-- Finished flights (docs/streams.md#flights), written by the stream worker. The id is
-- FLEET/DRONE_ID/START_MS, so a flight is also found by its drone and start; kept for good
-- (no expires_at: a flight is a few hundred bytes, and the record of what flew).
CREATE TABLE IF NOT EXISTS flights (
    fleet                     TEXT    NOT NULL,
    drone_id                  TEXT    NOT NULL,
    start_ms                  INTEGER NOT NULL,
    end_ms                    INTEGER NOT NULL,
    duration_ms               INTEGER NOT NULL,
    ended_by                  TEXT    NOT NULL,  -- landed | link_lost
    distance_m                REAL    NOT NULL,
    max_alt_m                 REAL    NOT NULL,
    max_speed_mps             REAL    NOT NULL,
    battery_start_pct         REAL    NOT NULL,
    battery_end_pct           REAL    NOT NULL,
    battery_used_pct_per_min  REAL,
    points                    INTEGER NOT NULL,
    alert_ids                 TEXT    NOT NULL DEFAULT '[]',  -- JSON array
    PRIMARY KEY (fleet, drone_id, start_ms)
) WITHOUT ROWID;
