-- Schema version 11: fencing. Every take-over of the lease moves its epoch on; every journal
-- intent records the epoch of the lease it was written under, and is refused when the lease
-- has moved on since (a replica that lost its lease while paused never writes again).
ALTER TABLE lease ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE journal ADD COLUMN epoch INTEGER;
