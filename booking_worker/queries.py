"""Read-only commands: a ticket's status, one booking, a fan's bookings."""

from __future__ import annotations

import uuid
from datetime import datetime
from itertools import groupby

from booking_worker.context import Connection, Context, Reply
from ticketing.domain.booking import is_id
from ticketing.domain.booking_shapes import Booking, Ticket, TicketState
from ticketing.messages import GetBooking, ListBookings, TicketStatus
from ticketing.problems import Problem
from ticketing.validation import encode_cursor

# Bookings with their tickets, one row per ticket (one row with no ticket for a booking
# that has none), in booking then ticket order.
_BOOKINGS = """
SELECT b.id, b.hold_id, b.status, b.amount_cents, b.currency, b.payment_intent_id,
       b.created_at, t.id AS ticket_id, t.section, t."row", t.number, t.price_cents
FROM bookings b LEFT JOIN tickets t ON t.booking_id = b.id
WHERE b.id = ANY($1) ORDER BY b.id, t.id"""


async def bookings_of(conn: Connection, booking_ids: list[uuid.UUID]) -> list[Booking]:
    """Bookings in the order of ``booking_ids``, with their tickets."""
    rows = await conn.fetch(_BOOKINGS, booking_ids)
    by_id = {}
    for booking_id, group in groupby(rows, key=lambda r: r["id"]):
        lines = list(group)
        tickets = [
            Ticket(r["ticket_id"], r["section"], r["row"], r["number"], r["price_cents"])
            for r in lines
            if r["ticket_id"] is not None
        ]
        by_id[booking_id] = Booking.of(lines[0], tickets)
    return [by_id[i] for i in booking_ids if i in by_id]


async def ticket_status(ctx: Context, conn: Connection, command: TicketStatus) -> Reply:
    ticket_id = command.ticket_id
    if not is_id(ticket_id):
        raise Problem(404, "ticket_not_found", "No such ticket.")
    row = await conn.fetchrow(
        """SELECT t.id, t.status::text AS status, t.hold_id, t.booking_id,
                  h.user_id AS hold_user, h.expires_at, h.status = 'held'
                      AND h.expires_at > now() AS hold_live,
                  b.user_id AS booking_user
           FROM tickets t LEFT JOIN holds h ON h.id = t.hold_id
                LEFT JOIN bookings b ON b.id = t.booking_id
           WHERE t.id = $1""",
        ticket_id,
    )
    if row is None:
        raise Problem(404, "ticket_not_found", "No such ticket.")
    state = TicketState(
        row["id"],
        row["status"],
        bool(row["hold_live"]),
        row["hold_id"],
        row["expires_at"],
        row["hold_user"],
        row["booking_id"],
        row["booking_user"],
    )
    return 200, state.to_json(command.user_id, command.is_admin)


async def get_booking(ctx: Context, conn: Connection, command: GetBooking) -> Reply:
    not_found = Problem(404, "booking_not_found", "No such booking.")
    try:
        booking_id = uuid.UUID(command.booking_id)
    except ValueError as exc:
        raise not_found from exc
    owner = await conn.fetchval("SELECT user_id FROM bookings WHERE id = $1", booking_id)
    if owner is None or (owner != command.user_id and not command.is_admin):
        raise not_found
    return 200, (await bookings_of(conn, [booking_id]))[0].to_json()


async def list_bookings(ctx: Context, conn: Connection, command: ListBookings) -> Reply:
    """The caller's bookings, newest first; the cursor is (created_at, id) of the last one."""
    limit, cursor = command.limit, command.cursor
    if not 1 <= limit <= 100:
        raise Problem(400, "validation_error", "limit must be between 1 and 100.")
    after_at: datetime | None = None
    after_id: uuid.UUID | None = None
    if cursor is not None:
        try:
            after_at = datetime.fromisoformat(cursor[0])
            after_id = uuid.UUID(cursor[1])
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise Problem(400, "validation_error", "cursor is not valid.") from exc
    rows = await conn.fetch(
        """SELECT id, created_at FROM bookings
           WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
           ORDER BY created_at DESC, id DESC LIMIT $4""",
        command.user_id,
        after_at,
        after_id,
        limit + 1,
    )
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor(last["created_at"].isoformat(), str(last["id"]))
    items = [b.to_json() for b in await bookings_of(conn, [r["id"] for r in page])]
    return 200, {"items": items, "next_cursor": next_cursor}
