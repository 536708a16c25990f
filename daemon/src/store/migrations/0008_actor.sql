-- Schema version 8: who started each apply (the OS user of a CLI command, the daemon, the API
-- token of an operator request, or the approver of an approved plan).
ALTER TABLE applies ADD COLUMN actor TEXT;
