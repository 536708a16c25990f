-- Schema version 2: structured event data for followers (the TUI), and applies linked to the
-- plan they executed.
ALTER TABLE events ADD COLUMN address TEXT;
ALTER TABLE events ADD COLUMN data TEXT;
CREATE INDEX events_by_time ON events (at);
ALTER TABLE applies ADD COLUMN plan_id INTEGER REFERENCES plans (id);
