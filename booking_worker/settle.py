"""Settling a payment Stripe reports succeeded, once: it books the hold's seats, or it is
owed back (ticketing.domain.booking_states: "refund due"). Called by a confirm when Stripe
answers and by the ``payment_intent.succeeded`` webhook, whichever comes first."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from booking_worker.context import Connection, Reply, as_connection
from booking_worker.payment_replies import hold_not_found
from ticketing.db.outbox import record_event_changed
from ticketing.domain.booking_shapes import Booking, tickets_of
from ticketing.domain.booking_states import (
    SETTLED,
    AttemptState,
    attempt_state,
    seats_still_free,
    settle,
)
from ticketing.messages import EVENT_CHANGED, event_changed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Settled:
    """What settling a successful payment did: booked the seats, or owes a refund."""

    booking_id: uuid.UUID | None
    refund_due: bool
    # The new booking's body when this call booked it (booking_body's form), so a confirm
    # answers without reading back what it just wrote.
    booking: dict[str, Any] | None = None


async def settle_success(
    conn: Connection, attempt_id: uuid.UUID, intent_id: str, ticket_ids: list[int]
) -> Settled:
    """Record a payment Stripe reports succeeded, once. Books the seats if they are still
    this hold's or free (a late payment after expiry is honoured that way); otherwise, or
    if the hold was already booked by another attempt, marks the payment as owing a refund
    (status 'succeeded' with a failure_code) for :func:`complete_due_refunds`.

    The usual case, a payment that books, is one statement (``_BOOK``); the rest, and
    whatever that statement could not decide, is settled by :func:`_settle_locked`."""
    booking_id = uuid.uuid4()
    rows = await conn.fetch(
        _BOOK, attempt_id, intent_id, ticket_ids, booking_id, EVENT_CHANGED, _AVAILABILITY
    )
    if rows and rows[0]["created_at"] is not None:
        first = rows[0]
        log.info(
            "payment settled hold_id=%s attempt=%s intent=%s outcome=booked",
            first["hold_id"],
            attempt_id,
            intent_id,
        )
        booking = Booking(
            booking_id,
            first["hold_id"],
            "confirmed",
            tickets_of(rows),
            first["amount_cents"],
            first["currency"].strip(),
            intent_id,
            first["created_at"],
        )
        return Settled(booking_id, False, booking.to_json())
    if rows and _settled(rows[0]):
        first = rows[0]
        refund_due = _state(first) is not AttemptState.BOOKED
        return Settled(first["settled_booking_id"], refund_due)
    return await _settle_locked(conn, attempt_id, intent_id, ticket_ids)


# ``catalog.event.changed`` for availability, its event id added by _BOOK.
_AVAILABILITY = json.dumps(
    {k: v for k, v in event_changed(0, "availability").items() if k != "event_id"}
)

# Books a succeeded payment in one statement, when nothing stands in the way: the attempt
# not yet settled, no booking of its hold, every seat still the hold's or free. It locks
# as _settle_locked does, the attempt, then its hold, then the seats in id order (each
# waits for the one before: its WHERE needs that row), and a locked row is read as it is
# once locked. The snapshot is the statement's, though, taken before any wait: a booking
# of this hold committed by a concurrent settle while this one waited is not seen by the
# NOT EXISTS; the unique hold_id then makes the insert do nothing, and every other write
# waits on that insert. Whatever did not book here (already settled, seats taken, a
# duplicate charge, such a conflict) wrote nothing and is for _settle_locked.
_BOOK = """
WITH attempt AS MATERIALIZED (
    SELECT id, hold_id, status, booking_id, failure_code FROM payments
    WHERE id = $1 FOR UPDATE
), hold AS MATERIALIZED (
    SELECT id, event_id, user_id, amount_cents, currency FROM holds
    WHERE id = (SELECT hold_id FROM attempt) FOR UPDATE
), seats AS MATERIALIZED (
    SELECT id, status, hold_id FROM tickets
    WHERE id = ANY($3::bigint[]) AND event_id = (SELECT event_id FROM hold)
    ORDER BY id FOR UPDATE
), bookable AS MATERIALIZED (
    SELECT (SELECT status FROM attempt) NOT IN ('succeeded', 'refunded')
       AND NOT EXISTS (SELECT FROM bookings WHERE hold_id = (SELECT id FROM hold))
       AND cardinality($3::bigint[]) > 0
       AND (SELECT count(*) FROM seats)
           = (SELECT count(DISTINCT i) FROM unnest($3::bigint[]) AS i)
       AND NOT EXISTS (
           SELECT FROM seats
           WHERE status <> 'available'
             AND NOT (status = 'reserved' AND hold_id = (SELECT id FROM hold))
       ) AS yes
), booking AS (
    INSERT INTO bookings (id, hold_id, event_id, user_id, status, amount_cents, currency,
                          payment_intent_id)
    SELECT $4, id, event_id, user_id, 'confirmed', amount_cents, currency, $2
    FROM hold WHERE (SELECT yes FROM bookable)
    ON CONFLICT (hold_id) DO NOTHING
    RETURNING hold_id, event_id, amount_cents, currency, created_at
), booked AS (
    UPDATE tickets SET status = 'booked', hold_id = (SELECT hold_id FROM booking),
                       booking_id = $4
    WHERE id = ANY($3::bigint[]) AND EXISTS (SELECT FROM booking)
    RETURNING id, section, "row", number, price_cents
), confirmed AS (
    UPDATE holds SET status = 'confirmed' WHERE id = (SELECT hold_id FROM booking)
), announced AS (
    INSERT INTO outbox (topic, aggregate_id, payload)
    SELECT $5, event_id::text, $6::jsonb || jsonb_build_object('event_id', event_id)
    FROM booking
), paid AS (
    UPDATE payments SET status = 'succeeded', payment_intent_id = $2, booking_id = $4,
                        failure_code = NULL, updated_at = now()
    WHERE id = $1 AND EXISTS (SELECT FROM booking)
)
SELECT a.status, a.booking_id AS settled_booking_id, a.failure_code,
       b.hold_id, b.amount_cents, b.currency, b.created_at,
       t.id, t.section, t."row", t.number, t.price_cents
FROM attempt AS a LEFT JOIN booking AS b ON true LEFT JOIN booked AS t ON true
ORDER BY t.id"""


async def _settle_locked(
    conn: Connection, attempt_id: uuid.UUID, intent_id: str, ticket_ids: list[int]
) -> Settled:
    """settle_success's every case, each read made after the locks it depends on."""
    async with conn.transaction():
        payment = await conn.fetchrow("SELECT * FROM payments WHERE id = $1 FOR UPDATE", attempt_id)
        if payment is None:
            raise LookupError(f"unknown payment attempt {attempt_id}")
        hold_id = payment["hold_id"]
        hold = await conn.fetchrow("SELECT * FROM holds WHERE id = $1 FOR UPDATE", hold_id)
        if hold is None:  # a payment's hold is never deleted (foreign key)
            raise LookupError(f"no hold {hold_id} of payment attempt {attempt_id}")
        if _settled(payment):
            return Settled(payment["booking_id"], _state(payment) is not AttemptState.BOOKED)
        booking = await conn.fetchrow("SELECT id FROM bookings WHERE hold_id = $1", hold_id)
        # Lock in id order, like every other writer of tickets, so we cannot deadlock.
        tickets = await conn.fetch(
            "SELECT id, status, hold_id FROM tickets WHERE id = ANY($1::bigint[])"
            " AND event_id = $2 ORDER BY id FOR UPDATE",
            ticket_ids,
            hold["event_id"],
        )
        found = [(t["id"], t["status"], t["hold_id"]) for t in tickets]
        outcome = settle(booking is not None, seats_still_free(ticket_ids, found, hold_id))
        reason = outcome.reason
        if booking is not None:
            booking_id = booking["id"]
        elif not outcome.refund_due:
            booking_id = uuid.uuid4()
            await _book(conn, hold, booking_id, intent_id, ticket_ids)
        else:
            booking_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO bookings (id, hold_id, event_id, user_id, status, amount_cents,"
                " currency, payment_intent_id) VALUES ($1, $2, $3, $4, 'refunded', $5, $6, $7)",
                booking_id,
                hold_id,
                hold["event_id"],
                hold["user_id"],
                payment["amount_cents"],
                payment["currency"],
                intent_id,
            )
        await conn.execute(
            "UPDATE payments SET status = 'succeeded', payment_intent_id = $2, booking_id = $3,"
            " failure_code = $4, updated_at = now() WHERE id = $1",
            attempt_id,
            intent_id,
            booking_id,
            None if reason is None else reason.value,
        )
    log.info(
        "payment settled hold_id=%s attempt=%s intent=%s outcome=%s",
        hold_id,
        attempt_id,
        intent_id,
        reason or "booked",
    )
    return Settled(booking_id, outcome.refund_due)


async def _book(
    conn: Connection,
    hold: asyncpg.Record,
    booking_id: uuid.UUID,
    intent_id: str,
    ticket_ids: list[int],
) -> None:
    await conn.execute(
        "INSERT INTO bookings (id, hold_id, event_id, user_id, status, amount_cents, currency,"
        " payment_intent_id) VALUES ($1, $2, $3, $4, 'confirmed', $5, $6, $7)",
        booking_id,
        hold["id"],
        hold["event_id"],
        hold["user_id"],
        hold["amount_cents"],
        hold["currency"],
        intent_id,
    )
    await conn.execute(
        "UPDATE tickets SET status = 'booked', hold_id = $2, booking_id = $3"
        " WHERE id = ANY($1::bigint[])",
        ticket_ids,
        hold["id"],
        booking_id,
    )
    await conn.execute("UPDATE holds SET status = 'confirmed' WHERE id = $1", hold["id"])
    await record_event_changed(as_connection(conn), hold["event_id"], "availability")


async def booking_reply(conn: Connection, hold_id: uuid.UUID) -> Reply:
    booking = await conn.fetchrow("SELECT * FROM bookings WHERE hold_id = $1", hold_id)
    if booking is None:
        return hold_not_found()
    return 201, await booking_body(conn, booking)


async def booking_body(conn: Connection, booking: asyncpg.Record) -> dict[str, Any]:
    tickets = await conn.fetch(
        'SELECT id, section, "row", number, price_cents FROM tickets WHERE booking_id = $1'
        " ORDER BY id",
        booking["id"],
    )
    return Booking.of(booking, tickets_of(tickets)).to_json()


def _state(payment: asyncpg.Record) -> AttemptState:
    return attempt_state(payment["status"], payment["failure_code"])


def _settled(payment: asyncpg.Record) -> bool:
    return _state(payment) in SETTLED
