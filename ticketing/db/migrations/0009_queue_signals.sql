-- depends: 0007_queue_challenge
-- One person, one place (waitingroom/queue/signals*.py; README "One person, one place").
-- The operators' rule per event, with the rest of its queue settings: what happens to fans
-- whose accounts look like one actor's (off: only shown to operators; harder_challenge: a
-- harder proof of work at the door; back_of_line: moved behind everyone in line) and the
-- threshold K (an address block or a device with more than K accounts is a cluster).
-- NULL: never set (off, and the default K).
ALTER TABLE queue_settings
    ADD COLUMN cluster_rule text
        CHECK (cluster_rule IN ('off', 'harder_challenge', 'back_of_line')),
    ADD COLUMN cluster_threshold integer CHECK (cluster_threshold >= 1);

-- The card each account paid with, per event, as the booking worker saw it at confirm
-- (Stripe's card fingerprint: the same card number gives the same one, whoever pays with
-- it). A card paid with by more than one account is a cluster. Written best effort after
-- a confirm settled, never as part of it. The address and device signals of joins live
-- in Redis, under the event's hash tag.
CREATE TABLE queue_signal_cards (
    event_id     bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    fingerprint  text NOT NULL CHECK (length(fingerprint) BETWEEN 1 AND 64),
    user_id      text NOT NULL,
    first_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, fingerprint, user_id)
);
