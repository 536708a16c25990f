-- Schema version 10: named API tokens with a scope (read or write), kept as SHA-256 hashes: the
-- token itself is shown once, when it is made, and never stored.
CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
);
