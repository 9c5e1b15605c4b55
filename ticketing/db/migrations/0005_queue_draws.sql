-- depends: 0004_refund_due_index
-- The public record of each waiting room's fair start. Redis holds the queue and may lose
-- it; the record an auditor checks must not go with it. A draw, once recorded, is final.

-- The commitment in force (epoch 1 unless Redis lost the secret seed before the draw and
-- the room had to commit to a new one), then, at on-sale, the seed revealed and the order.
-- order_sha256 is SHA-256 of the drawn member refs joined by '\n', so anyone who fetched
-- the order page by page can check they have all of it.
CREATE TABLE queue_draws (
    event_id      bigint PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    epoch         integer NOT NULL DEFAULT 1 CHECK (epoch >= 1),
    commitment    text NOT NULL CHECK (commitment ~ '^[0-9a-f]{64}$'),
    committed_at  timestamptz NOT NULL,
    seed          text CHECK (seed ~ '^[0-9a-f]{64}$'),
    revealed_at   timestamptz,
    total         integer CHECK (total >= 0),
    order_sha256  text CHECK (order_sha256 ~ '^[0-9a-f]{64}$'),
    CHECK (
        (seed IS NULL) = (revealed_at IS NULL)
        AND (seed IS NULL) = (total IS NULL)
        AND (seed IS NULL) = (order_sha256 IS NULL)
    )
);

-- Position 1 is the first fan of the pre-queue; member_rank is the ref's place in sorted
-- order. Each pages by an index range however deep the page (an OFFSET over 200,000 refs
-- took 0.26 s a page); the ref index answers "where was I drawn". A length check, not a
-- pattern: a pattern per row cost a 200,000-fan draw 1.5 s more.
CREATE TABLE queue_draw_members (
    event_id     bigint NOT NULL REFERENCES queue_draws (event_id) ON DELETE CASCADE,
    position     integer NOT NULL CHECK (position >= 1),
    member_ref   text NOT NULL CHECK (length(member_ref) = 64),
    member_rank  integer NOT NULL CHECK (member_rank >= 1),
    PRIMARY KEY (event_id, position),
    UNIQUE (event_id, member_ref),
    UNIQUE (event_id, member_rank)
);

-- Commitments whose seed was lost with Redis before it could be revealed, kept public.
CREATE TABLE queue_draw_superseded (
    event_id       bigint NOT NULL REFERENCES queue_draws (event_id) ON DELETE CASCADE,
    epoch          integer NOT NULL,
    commitment     text NOT NULL,
    committed_at   timestamptz NOT NULL,
    superseded_at  timestamptz NOT NULL,
    PRIMARY KEY (event_id, epoch)
);

-- Whatever a service does, a revealed draw is never rewritten: no change to a drawn row,
-- no member moved, none added to a drawn order (the members go in before the seed). The
-- insert check runs once per statement: a draw of 100,000 fans is one INSERT.
CREATE FUNCTION queue_draw_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'queue_draws' THEN
        IF OLD.seed IS NULL THEN  -- (nested: the members' rows have no seed field)
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'a recorded draw is final (event %)', OLD.event_id
        USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER queue_draws_final BEFORE UPDATE ON queue_draws
    FOR EACH ROW EXECUTE FUNCTION queue_draw_is_final();
CREATE TRIGGER queue_draw_members_fixed BEFORE UPDATE ON queue_draw_members
    FOR EACH ROW EXECUTE FUNCTION queue_draw_is_final();

CREATE FUNCTION queue_draw_members_not_after_reveal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM added JOIN queue_draws d USING (event_id) WHERE d.seed IS NOT NULL
    ) THEN
        RAISE EXCEPTION 'a recorded draw is final: no members join it'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER queue_draw_members_closed AFTER INSERT ON queue_draw_members
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION queue_draw_members_not_after_reveal();
