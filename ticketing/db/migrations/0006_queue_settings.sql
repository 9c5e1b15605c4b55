-- depends: 0005_queue_draws
-- What operators set for each event's waiting room (PATCH /admin/queues/{event_id}), on
-- record. The queue runs on a copy in Redis (the event's config hash), which a Redis
-- restart without its data loses: the waitingroom writes this record back, and admits
-- nobody in that queue until it has (waitingroom/queue/store_config.py), so a paused queue
-- never comes back unpaused, nor a tuned rate as the default.
-- Only what operators set: a NULL was never set and takes the TICKETING_QUEUE_* default
-- (no row: none was). The bounds an operator may set are the PATCH model's; these checks
-- only keep out what no queue could run with.
CREATE TABLE queue_settings (
    event_id                  bigint PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    -- Microseconds since the epoch at the change, and more than the one before: Redis
    -- takes a copy only over an older one, so changes that cross leave the latest there.
    version                   bigint NOT NULL CHECK (version > 0),
    admit_per_minute          integer CHECK (admit_per_minute >= 0),
    max_active                integer CHECK (max_active >= 0),
    paused                    boolean,
    session_seconds           integer CHECK (session_seconds >= 1),
    mode                      text CHECK (mode IN ('manual', 'auto')),
    claim_seconds             integer CHECK (claim_seconds >= 1),
    admission_margin_percent  integer CHECK (admission_margin_percent >= 0),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    updated_by                text NOT NULL
);
