-- Schema version 3: every drift scan has a row, so a clean scan (no findings) is the latest scan
-- and the findings of an older one are no longer shown as current.
CREATE TABLE drift_scans (
    id INTEGER PRIMARY KEY,
    scanned_at INTEGER NOT NULL,
    findings INTEGER NOT NULL
);
INSERT INTO drift_scans (id, scanned_at, findings)
    SELECT scan_id, MAX(scanned_at), COUNT(*) FROM drift GROUP BY scan_id;
