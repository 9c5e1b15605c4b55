-- Catalog and booking schema. The constraints here are the last line of defence: whatever a
-- service does, the database refuses a ticket in two bookings or a booked ticket without one.
-- depends:

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE venues (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    city        text NOT NULL CHECK (length(city) BETWEEN 1 AND 100),
    country     text NOT NULL DEFAULT '',
    lat         double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon         double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    seat_map    jsonb NOT NULL,
    capacity    integer NOT NULL CHECK (capacity > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX venues_city_trgm ON venues USING gin (city gin_trgm_ops);
CREATE INDEX venues_name_trgm ON venues USING gin (name gin_trgm_ops);

CREATE TABLE performers (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    genre       text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX performers_name_trgm ON performers USING gin (name gin_trgm_ops);

CREATE TABLE events (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description   text NOT NULL DEFAULT '',
    starts_at     timestamptz NOT NULL,
    venue_id      bigint NOT NULL REFERENCES venues (id),
    performer_id  bigint NOT NULL REFERENCES performers (id),
    on_sale_at    timestamptz NOT NULL DEFAULT now(),
    queue_enabled boolean NOT NULL DEFAULT false,
    currency      char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_starts_at_id ON events (starts_at, id);
CREATE INDEX events_venue ON events (venue_id);
CREATE INDEX events_performer ON events (performer_id, starts_at);
CREATE INDEX events_name_trgm ON events USING gin (name gin_trgm_ops);

CREATE TABLE holds (
    id            uuid PRIMARY KEY,
    event_id      bigint NOT NULL REFERENCES events (id),
    user_id       text NOT NULL,
    status        text NOT NULL CHECK (status IN ('held', 'confirmed', 'released', 'expired')),
    amount_cents  bigint NOT NULL CHECK (amount_cents >= 0),
    currency      char(3) NOT NULL,
    request_id    text UNIQUE,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, event_id)
);
CREATE INDEX holds_user_event ON holds (user_id, event_id) WHERE status = 'held';
CREATE INDEX holds_expiry ON holds (expires_at) WHERE status = 'held';

CREATE TABLE bookings (
    id                uuid PRIMARY KEY,
    hold_id           uuid NOT NULL UNIQUE REFERENCES holds (id),
    event_id          bigint NOT NULL REFERENCES events (id),
    user_id           text NOT NULL,
    status            text NOT NULL CHECK (status IN ('confirmed', 'refunded')),
    amount_cents      bigint NOT NULL CHECK (amount_cents >= 0),
    currency          char(3) NOT NULL,
    payment_intent_id text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, event_id)
);
CREATE INDEX bookings_user ON bookings (user_id, created_at DESC);

CREATE TYPE ticket_status AS ENUM ('available', 'reserved', 'booked');

CREATE TABLE tickets (
    id          bigserial PRIMARY KEY,
    event_id    bigint NOT NULL REFERENCES events (id),
    section     text NOT NULL,
    "row"       text NOT NULL,
    number      integer NOT NULL CHECK (number > 0),
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    status      ticket_status NOT NULL DEFAULT 'available',
    hold_id     uuid,
    booking_id  uuid,
    UNIQUE (event_id, section, "row", number),
    -- A ticket's hold and booking belong to its own event.
    FOREIGN KEY (hold_id, event_id) REFERENCES holds (id, event_id),
    FOREIGN KEY (booking_id, event_id) REFERENCES bookings (id, event_id),
    -- One column for the booking means a ticket can never be in two bookings; the check
    -- means a booked ticket always names its booking and an available one names nothing.
    CONSTRAINT ticket_state CHECK (
        (status = 'available' AND hold_id IS NULL AND booking_id IS NULL)
        OR (status = 'reserved' AND hold_id IS NOT NULL AND booking_id IS NULL)
        OR (status = 'booked' AND booking_id IS NOT NULL)
    )
);
CREATE INDEX tickets_event_status ON tickets (event_id, status, section);
CREATE INDEX tickets_hold ON tickets (hold_id) WHERE hold_id IS NOT NULL;
CREATE INDEX tickets_booking ON tickets (booking_id) WHERE booking_id IS NOT NULL;

CREATE TABLE payments (
    id                uuid PRIMARY KEY,
    hold_id           uuid NOT NULL REFERENCES holds (id),
    booking_id        uuid REFERENCES bookings (id),
    idempotency_key   text NOT NULL UNIQUE,
    payment_intent_id text UNIQUE,
    amount_cents      bigint NOT NULL CHECK (amount_cents >= 0),
    currency          char(3) NOT NULL,
    status            text NOT NULL
                      CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
    failure_code      text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_hold ON payments (hold_id);

CREATE TABLE stripe_webhook_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    payload     jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- Transactional outbox: a change and its announcement commit together or not at all.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    topic        text NOT NULL,
    aggregate_id text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Wake the relay at commit time instead of waiting for its next poll.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
