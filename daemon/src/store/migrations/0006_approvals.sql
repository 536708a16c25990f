-- Schema version 6: approvals. A plan that needs approval (sync "manual", or an `approval`
-- scope in the platform) is requested once per revision and plan hash; an approval names who
-- gave it and covers exactly that plan; it is used once.
CREATE TABLE approvals (
    id INTEGER PRIMARY KEY,
    revision TEXT NOT NULL,
    plan_hash TEXT NOT NULL,
    summary TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    approved_by TEXT,
    approved_at INTEGER,
    applied_at INTEGER,
    UNIQUE (revision, plan_hash)
);
