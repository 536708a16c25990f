-- Schema version 5: each resource's health (ready, progressing, degraded, missing) and why,
-- recorded by applies and drift scans.
ALTER TABLE resources ADD COLUMN health TEXT NOT NULL DEFAULT 'ready';
ALTER TABLE resources ADD COLUMN health_message TEXT;
