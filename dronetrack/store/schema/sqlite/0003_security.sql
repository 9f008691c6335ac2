-- Security state kept in the store rather than the cache, where eviction or a restart of Redis
-- would forget it. Signing out voids a user's sessions issued up to then (epoch ms).
ALTER TABLE users ADD COLUMN sessions_valid_after INTEGER NOT NULL DEFAULT 0;

-- Failed logins per scope (a hashed user name or client address), newest first, each kept for
-- the throttle's window (expires_at, epoch ms; purged with the other expired rows). A success
-- writes a row with cleared = 1: the failures before it no longer count.
CREATE TABLE IF NOT EXISTS login_failures (
    scope       TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    id          TEXT    NOT NULL,
    cleared     INTEGER NOT NULL DEFAULT 0,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, at, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS login_failures_expiry ON login_failures (expires_at);
