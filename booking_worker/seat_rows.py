"""The reads a reserve decides on: each fan's tickets held or booked, and free seats, locked.

Seat rows are only ever taken with ``FOR UPDATE SKIP LOCKED``, so concurrent workers never
wait on each other's seats (no lock queues, no deadlocks on tickets); the write that follows
re-checks ``status = 'available'`` (booking_worker.reserve), so a seat goes to at most one
live hold.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from booking_worker.context import Connection
from ticketing.domain.booking import SeatWindow, window_size
from ticketing.domain.booking_shapes import Ticket

# The per-fan cap counts unexpired holds and confirmed bookings of the event.
_ALREADY = """SELECT u AS user_id,
       (SELECT coalesce(sum(cardinality(ticket_ids)), 0) FROM holds
         WHERE user_id = u AND event_id = $1 AND status = 'held' AND expires_at > now())
     + (SELECT count(*) FROM tickets t JOIN bookings b ON b.id = t.booking_id
         WHERE b.user_id = u AND b.event_id = $1 AND b.status = 'confirmed') AS already
FROM unnest($2::text[]) u"""

_FREE_EXPLICIT = """SELECT id, section, "row", number, price_cents FROM tickets
    WHERE id = ANY($1) AND event_id = $2 AND status = 'available'
    ORDER BY id FOR UPDATE SKIP LOCKED"""

_WINDOW_FROM_START = """SELECT id, section, "row", number, price_cents FROM tickets
    WHERE event_id = $1 AND status = 'available' AND ($2::text IS NULL OR section = $2)
    ORDER BY section, "row", number LIMIT $3
    FOR UPDATE SKIP LOCKED"""
# Separate text, not an "$4 IS NULL OR ..." condition: a generic plan could not start the
# index scan at the mark.
_WINDOW_FROM_MARK = """SELECT id, section, "row", number, price_cents FROM tickets
    WHERE event_id = $1 AND status = 'available' AND ($2::text IS NULL OR section = $2)
      AND (section, "row", number) >= ($4::text, $5::text, $6::int)
    ORDER BY section, "row", number LIMIT $3
    FOR UPDATE SKIP LOCKED"""


async def already_held_or_booked(
    conn: Connection, event_id: int, users: list[str]
) -> dict[str, int]:
    """Tickets each of ``users`` holds (unexpired) or bought for the event, in one query."""
    rows = await conn.fetch(_ALREADY, event_id, users)
    return {r["user_id"]: r["already"] for r in rows}


async def free_explicit(conn: Connection, event_id: int, ids: list[int]) -> dict[int, Ticket]:
    """Those of ``ids`` that are free and not being taken by another transaction right now
    (skipped, i.e. reported taken, rather than waited for), locked."""
    return {r["id"]: Ticket.of(r) for r in await conn.fetch(_FREE_EXPLICIT, ids, event_id)}


async def free_window(
    conn: Connection,
    marks: dict[Any, tuple[str, str, int]],
    event_id: int,
    section: str | None,
    count: int,
) -> SeatWindow:
    """Free seats for ``count`` asked, in seat order, locked; from this worker's mark of
    where the first free seat was last found (``marks``), so the scan does not step over
    every seat sold since the last vacuum (they stay in the free-seat index, dead, until
    then); from the start when the mark comes up short (seats freed behind it)."""
    size = window_size(count)
    mark = marks.get((event_id, section))
    rows: list[asyncpg.Record] = []
    if mark:
        rows = await conn.fetch(_WINDOW_FROM_MARK, event_id, section, size, *mark)
    if len(rows) < count:
        rows = await conn.fetch(_WINDOW_FROM_START, event_id, section, size)
    if rows:
        marks[(event_id, section)] = (rows[0]["section"], rows[0]["row"], rows[0]["number"])
    return SeatWindow([Ticket.of(r) for r in rows])
