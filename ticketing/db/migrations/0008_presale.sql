-- depends: 0007_queue_challenge
-- Registered presales (issue 14 item 2; waitingroom/queue/presale*.py, README "Registered
-- presales"). Operators open a registration window for an event; fans register before it
-- closes; at the draw the first `codes` registrants of an order drawn from a committed
-- seed get single-use presale codes; from on-sale until general_sale_at the event's queue
-- admits only fans with their code, and the presale sells at most `seats` seats.

-- One presale per event. The seed is committed to when the presale is made (its SHA-256
-- is presale_draws.commitment, public at once) and kept here, secret, until the draw
-- reveals it: unlike the pre-queue's, in PostgreSQL, so no Redis loss can make the room
-- commit again.
CREATE TABLE presales (
    event_id                bigint PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    registration_opens_at   timestamptz NOT NULL,
    registration_closes_at  timestamptz NOT NULL,
    general_sale_at         timestamptz NOT NULL,
    codes                   integer NOT NULL CHECK (codes >= 1),
    seats                   integer NOT NULL CHECK (seats >= 1),
    seed                    text NOT NULL CHECK (seed ~ '^[0-9a-f]{64}$'),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    updated_by              text NOT NULL,
    CHECK (registration_opens_at < registration_closes_at),
    CHECK (registration_closes_at < general_sale_at)
);

-- A fan's registration (one per fan and presale), and after the draw their code if they
-- were drawn one: bound to this fan and this event, redeemed by their first presale join.
CREATE TABLE presale_registrations (
    event_id        bigint NOT NULL REFERENCES presales (event_id) ON DELETE CASCADE,
    user_id         text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 200),
    member_ref      text NOT NULL CHECK (length(member_ref) = 64),
    registered_at   timestamptz NOT NULL DEFAULT now(),
    code            text CHECK (code ~ '^[0-9A-Z]{12}$'),
    code_issued_at  timestamptz,
    redeemed_at     timestamptz,
    PRIMARY KEY (event_id, user_id),
    UNIQUE (event_id, member_ref),
    UNIQUE (event_id, code),
    CHECK ((code IS NULL) = (code_issued_at IS NULL)),
    CHECK (redeemed_at IS NULL OR code IS NOT NULL)
);

-- The presale's draw, kept exactly as the pre-queue's (0005: the same columns, the same
-- code writes and verifies it, waitingroom/queue/draw_record.py), final once recorded.
CREATE TABLE presale_draws (
    event_id      bigint PRIMARY KEY REFERENCES presales (event_id) ON DELETE CASCADE,
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

CREATE TABLE presale_draw_members (
    event_id     bigint NOT NULL REFERENCES presale_draws (event_id) ON DELETE CASCADE,
    position     integer NOT NULL CHECK (position >= 1),
    member_ref   text NOT NULL CHECK (length(member_ref) = 64),
    member_rank  integer NOT NULL CHECK (member_rank >= 1),
    PRIMARY KEY (event_id, position),
    UNIQUE (event_id, member_ref),
    UNIQUE (event_id, member_rank)
);

-- Never written (the seed is not lost with Redis), kept so the record reads as the
-- pre-queue's does.
CREATE TABLE presale_draw_superseded (
    event_id       bigint NOT NULL REFERENCES presale_draws (event_id) ON DELETE CASCADE,
    epoch          integer NOT NULL,
    commitment     text NOT NULL,
    committed_at   timestamptz NOT NULL,
    superseded_at  timestamptz NOT NULL,
    PRIMARY KEY (event_id, epoch)
);

-- A drawn presale is final: its draw row, its members, its seed and who registered.
CREATE FUNCTION presale_draw_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'presale_draws' THEN
        IF OLD.seed IS NULL THEN  -- (nested: the members' rows have no seed field)
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'a recorded presale draw is final (event %)', OLD.event_id
        USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER presale_draws_final BEFORE UPDATE ON presale_draws
    FOR EACH ROW EXECUTE FUNCTION presale_draw_is_final();
CREATE TRIGGER presale_draw_members_fixed BEFORE UPDATE ON presale_draw_members
    FOR EACH ROW EXECUTE FUNCTION presale_draw_is_final();

CREATE FUNCTION presale_closed_after_draw() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM added JOIN presale_draws d USING (event_id) WHERE d.seed IS NOT NULL
    ) THEN
        RAISE EXCEPTION 'a recorded presale draw is final: no members or registrations join it'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER presale_draw_members_closed AFTER INSERT ON presale_draw_members
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION presale_closed_after_draw();
CREATE TRIGGER presale_registrations_closed AFTER INSERT ON presale_registrations
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION presale_closed_after_draw();

-- The draw's seed and the presale's window stay as they were drawn with.
CREATE FUNCTION presale_fixed_after_draw() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM presale_draws WHERE event_id = OLD.event_id AND seed IS NOT NULL)
    THEN
        RAISE EXCEPTION 'a drawn presale is final (event %)', OLD.event_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER presales_fixed BEFORE UPDATE ON presales
    FOR EACH ROW EXECUTE FUNCTION presale_fixed_after_draw();
