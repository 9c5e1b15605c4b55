-- depends: 0001_catalog
-- Booking worker state: idempotent command replies, and which tickets each hold claimed.

-- One row per applied booking command: a redelivered message or a client retry with the
-- same Idempotency-Key finds its reply here instead of acting twice.
CREATE TABLE processed_commands (
    request_id  text PRIMARY KEY,
    type        text NOT NULL,
    reply       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_commands_created ON processed_commands (created_at);

-- The tickets a hold was granted, kept after release or expiry: audits (and the race test)
-- check that no ticket was ever granted to two live holds.
ALTER TABLE holds ADD COLUMN ticket_ids bigint[] NOT NULL DEFAULT '{}';
CREATE INDEX holds_event_expiry ON holds (event_id, expires_at) WHERE status = 'held';
