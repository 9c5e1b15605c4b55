-- depends: 0006_queue_settings
-- The proof of work at the queue's door (PATCH /admin/queues/{event_id}): the difficulty
-- operators set (0 turns it off; NULL: never set, TICKETING_CHALLENGE_DEFAULT_DIFFICULTY
-- applies) and whether the automatic mode may raise it under a spike. The bounds an
-- operator may set are the PATCH model's; the check only keeps out what no door could use.
ALTER TABLE queue_settings
    ADD COLUMN challenge_difficulty integer CHECK (challenge_difficulty >= 0),
    ADD COLUMN challenge_auto boolean;
