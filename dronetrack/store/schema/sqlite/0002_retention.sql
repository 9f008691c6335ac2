-- Retention: each time-series row carries the epoch-ms time it expires (NULL: never), the
-- equivalent of a Cassandra TTL. Reads hide expired rows; purge_expired() deletes them.
ALTER TABLE track_points ADD COLUMN expires_at INTEGER;
ALTER TABLE alerts ADD COLUMN expires_at INTEGER;
ALTER TABLE fleet_stats ADD COLUMN expires_at INTEGER;
CREATE INDEX IF NOT EXISTS track_points_expiry ON track_points (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS alerts_expiry ON alerts (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS fleet_stats_expiry ON fleet_stats (expires_at)
    WHERE expires_at IS NOT NULL;
