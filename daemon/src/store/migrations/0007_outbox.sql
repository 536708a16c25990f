-- Schema version 7: notifications, derived from the journal. The notifier turns every finished
-- apply after its cursor into one delivery per target (in one transaction with the cursor), then
-- delivers them with retries; nothing here is written by an apply, so a receiver can never hold
-- one back. Targets are stored as a hash of their configuration, never their URLs.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    apply_id INTEGER NOT NULL,
    target TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at INTEGER,
    last_error TEXT,
    UNIQUE (apply_id, target)
);
CREATE TABLE outbox_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_apply_id INTEGER NOT NULL
);
