DROP INDEX IF EXISTS holds_event_expiry;
ALTER TABLE holds DROP COLUMN IF EXISTS ticket_ids;
DROP TABLE IF EXISTS processed_commands;
