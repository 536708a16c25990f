-- Schema version 9: the cost controller. Resources held scaled down (an overlay on the desired
-- state, see docs/COST.md), when each candidate was first seen idle, the periods a resource spent
-- scaled down (what idle shutdown saved), and a note on each apply (why it was made).
CREATE TABLE scaled_down (
    address TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    team TEXT NOT NULL,
    since INTEGER NOT NULL,
    note TEXT NOT NULL,
    figure TEXT NOT NULL,
    -- The declared spec when it was scaled down: a commit that changes it wakes the resource.
    spec_before TEXT NOT NULL,
    monthly_usd_before REAL NOT NULL,
    monthly_usd_saved REAL NOT NULL
);
CREATE TABLE idle_since (
    address TEXT PRIMARY KEY,
    since INTEGER NOT NULL
);
CREATE TABLE idle_periods (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL,
    kind TEXT NOT NULL,
    team TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER NOT NULL,
    monthly_usd_saved REAL NOT NULL,
    woken_by TEXT NOT NULL
);
ALTER TABLE applies ADD COLUMN note TEXT;
