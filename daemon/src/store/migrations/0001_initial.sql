-- platformd store, schema version 1.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('generation', '0');

-- Every revision seen, valid or not.
CREATE TABLE revisions (
    id INTEGER PRIMARY KEY,
    revision TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    author TEXT,
    message TEXT,
    seen_at INTEGER NOT NULL,
    valid INTEGER NOT NULL,
    errors TEXT
);

-- The full desired snapshot of every applied revision (rollback needs no git).
CREATE TABLE snapshots (
    revision TEXT PRIMARY KEY,
    snapshot TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- One row per apply (of a revision, a rollback, or a drift correction). Never deleted.
CREATE TABLE applies (
    id INTEGER PRIMARY KEY,
    revision TEXT NOT NULL,
    reason TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    status TEXT NOT NULL,
    summary TEXT,
    generation_before INTEGER NOT NULL,
    generation_after INTEGER,
    holder TEXT NOT NULL
);

-- Per resource: the last applied spec, what the driver was asked, outputs and status.
CREATE TABLE resources (
    address TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    driver TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    desired TEXT NOT NULL,
    outputs TEXT NOT NULL,
    status TEXT NOT NULL,
    revision TEXT NOT NULL,
    apply_id INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Apply journal: an intent before every driver call, its result after.
CREATE TABLE journal (
    id INTEGER PRIMARY KEY,
    apply_id INTEGER NOT NULL,
    address TEXT NOT NULL,
    action TEXT NOT NULL,
    driver TEXT NOT NULL,
    desired TEXT,
    attempts INTEGER NOT NULL,
    intent_at INTEGER NOT NULL,
    result_at INTEGER,
    result TEXT,
    error TEXT
);
CREATE INDEX journal_unfinished ON journal (id) WHERE result IS NULL;

CREATE TABLE plans (
    id INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    revision TEXT,
    plan TEXT NOT NULL
);

CREATE TABLE drift (
    id INTEGER PRIMARY KEY,
    scan_id INTEGER NOT NULL,
    scanned_at INTEGER NOT NULL,
    address TEXT NOT NULL,
    status TEXT NOT NULL,
    details TEXT NOT NULL
);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);

-- At most one applier per state directory.
CREATE TABLE lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
