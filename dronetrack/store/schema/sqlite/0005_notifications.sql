-- Notification channels: where a fleet's alerts are delivered (docs/notifications.md). Each
-- channel carries its rule: the alert types and severities it receives (an empty list: all).
-- A webhook's signing secret is stored encrypted (secret_box, a Fernet token under
-- DRONETRACK_NOTIFY_SECRET_KEY), never in clear.
CREATE TABLE IF NOT EXISTS notify_channels (
    fleet        TEXT    NOT NULL,
    channel_id   TEXT    NOT NULL,
    kind         TEXT    NOT NULL,  -- webhook | email
    target       TEXT    NOT NULL,  -- the URL or the e-mail address
    format       TEXT    NOT NULL DEFAULT 'json',  -- json | slack (webhooks)
    secret_box   TEXT    NOT NULL DEFAULT '',
    alert_types  TEXT    NOT NULL DEFAULT '[]',  -- JSON array
    severities   TEXT    NOT NULL DEFAULT '[]',  -- JSON array
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (fleet, channel_id)
) WITHOUT ROWID;
