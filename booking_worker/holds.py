"""Reserve and release: the handlers that create and end holds, and hold expiry.

Seat rows are only ever taken with ``FOR UPDATE SKIP LOCKED`` followed by a conditional
update, so concurrent workers never wait on each other's seats (no lock queues, no
deadlocks on tickets) and a seat is granted to at most one live hold.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import asyncpg

from booking_worker.handlers import Context, Reply
from booking_worker.metrics import HOLDS_EXPIRED
from ticketing.db.outbox import record_event_changed
from ticketing.domain.booking import LimitExceeded, Seat, check_cap, choose_seats
from ticketing.problems import Problem
from ticketing.validation import MAX_ID, rfc3339

log = logging.getLogger(__name__)

# Free seats a best-available request locks to look for an adjacent run among: enough to
# find one in a row of the window, few enough that other fans' windows rarely meet it.
WINDOW_FACTOR = 4
# The unsafe control reads this many candidates, as the earlier design did.
CANDIDATES = 200


def not_on_sale(on_sale_at: Any) -> Problem:
    """Reserve and confirm before the event's on-sale, with or without a waiting room: a
    bot that knows an event id may not buy before the fans can."""
    return Problem(
        409,
        "not_on_sale",
        "This event is not on sale yet.",
        on_sale_at=rfc3339(on_sale_at),
    )


def unsafe_reserve(ctx: Context) -> bool:
    """The race test's control switch: read-then-write without the status condition. Only
    honoured when TICKETING_ENV=test, so no deployment can turn the protection off."""
    return ctx.settings.env == "test" and ctx.settings.extra.get("TICKETING_UNSAFE_RESERVE") == "1"


async def reserve(ctx: Context, conn: asyncpg.Connection, command: dict[str, Any]) -> Reply:
    if command.get("replay_only"):
        # The front door found the fan's admission over and asks only whether this request
        # was applied before (its stored reply is answered before any handler runs). It was
        # not: refuse, and the refusal is stored, so the original, should it still be on its
        # way, finds it and does not hold seats for a fan who was sent back to the line.
        raise Problem(
            403, "admission_invalid", "No reserve with this Idempotency-Key was made in time."
        )
    event_id = command.get("event_id")
    if not is_id(event_id):
        raise Problem(404, "event_not_found", "No such event.")
    # One fan's concurrent requests for one event take turns (the advisory lock, taken in
    # the same round trip as the event lookup), so the cap below holds across workers.
    event = await conn.fetchrow(
        """SELECT queue_enabled, currency, on_sale_at, on_sale_at > now() AS not_yet,
                  pg_advisory_xact_lock(hashtextextended($2, id)) IS NULL AS locked
           FROM events WHERE id = $1""",
        event_id,
        command["user_id"],
    )
    if event is None:
        raise Problem(404, "event_not_found", "No such event.")
    if event["not_yet"]:
        raise not_on_sale(event["on_sale_at"])
    if event["queue_enabled"] and command.get("admitted") is not True:
        raise Problem(
            403, "admission_required", "This event has a waiting room: join the queue first."
        )
    ticket_ids, quantity, section = request_of(command)
    user_id = command["user_id"]
    requested = len(ticket_ids) if ticket_ids else quantity
    already = await conn.fetchval(
        """SELECT (SELECT coalesce(sum(cardinality(ticket_ids)), 0) FROM holds
                    WHERE user_id = $1 AND event_id = $2 AND status = 'held'
                      AND expires_at > now())
                + (SELECT count(*) FROM tickets t JOIN bookings b ON b.id = t.booking_id
                    WHERE b.user_id = $1 AND b.event_id = $2 AND b.status = 'confirmed')""",
        user_id,
        event_id,
    )
    try:
        check_cap(ctx.settings.max_tickets_per_user, already, requested)
    except LimitExceeded as exc:
        raise Problem(
            422, "limit_exceeded", str(exc), limit=exc.cap, held_or_booked=exc.already
        ) from exc
    hold_id = uuid.uuid4()
    expires_at = await conn.fetchval(
        """INSERT INTO holds (id, event_id, user_id, status, amount_cents, currency,
                              request_id, expires_at)
           VALUES ($1, $2, $3, 'held', 0, $4, $5, now() + make_interval(secs => $6))
           RETURNING expires_at""",
        hold_id,
        event_id,
        user_id,
        event["currency"],
        command["request_id"],
        float(ctx.settings.hold_ttl_seconds),
    )
    if ticket_ids:
        granted = await _take_explicit(ctx, conn, event_id, hold_id, ticket_ids)
    else:
        granted = await _take_best(ctx, conn, event_id, hold_id, quantity, section)
    tickets = [
        {
            "id": r["id"],
            "seat": {"section": r["section"], "row": r["row"], "number": r["number"]},
            "price_cents": r["price_cents"],
        }
        for r in sorted(granted, key=lambda r: r["id"])
    ]
    amount = sum(t["price_cents"] for t in tickets)
    await conn.execute(
        "UPDATE holds SET amount_cents = $2, ticket_ids = $3 WHERE id = $1",
        hold_id,
        amount,
        [t["id"] for t in tickets],
    )
    await record_event_changed(conn, event_id, "availability")
    log.info("hold %s: event_id=%s user=%s tickets=%d", hold_id, event_id, user_id, len(tickets))
    return 201, {
        "hold_id": str(hold_id),
        "event_id": event_id,
        "tickets": tickets,
        "amount_cents": amount,
        "currency": event["currency"],
        "expires_at": rfc3339(expires_at),
        "status": "held",
    }


_TICKET_COLUMNS = 'id, section, "row", number, price_cents'


async def _take_explicit(
    ctx: Context, conn: asyncpg.Connection, event_id: int, hold_id: uuid.UUID, ids: list[int]
) -> list[asyncpg.Record]:
    """All of ``ids`` or a 409 (the savepoint undoes the hold)."""
    if unsafe_reserve(ctx):
        free = await conn.fetch(
            "SELECT id FROM tickets WHERE id = ANY($1) AND event_id = $2 AND status = 'available'",
            ids,
            event_id,
        )
        if len(free) == len(ids):
            await asyncio.sleep(0.002)  # a fan's think time is far longer than this window
            return await conn.fetch(
                f"""UPDATE tickets SET status = 'reserved', hold_id = $1
                    WHERE id = ANY($2) RETURNING {_TICKET_COLUMNS}""",
                hold_id,
                ids,
            )
        granted: list[asyncpg.Record] = [r for r in free]
    else:
        granted = await _claim(conn, hold_id, ids, event_id)
        if len(granted) == len(ids):
            return granted
    missing = sorted(set(ids) - {r["id"] for r in granted})
    raise Problem(
        409,
        "tickets_unavailable",
        "Some of these tickets are no longer available.",
        unavailable_ticket_ids=missing,
    )


async def _take_best(
    ctx: Context,
    conn: asyncpg.Connection,
    event_id: int,
    hold_id: uuid.UUID,
    quantity: int,
    section: str | None,
) -> list[asyncpg.Record]:
    """Lock a small window of the first free seats with SKIP LOCKED, choose among them
    (adjacent in one row when the window has such a run), reserve the choice.

    Seats another transaction is taking are skipped, never waited for, so concurrent
    workers neither queue on nor collide over the same seats; the unchosen seats of the
    window stay locked only until this batch commits. One lock statement and one update,
    whatever the contention: the earlier read-then-claim-and-retry spent most of the
    database's time re-reading the same first free seats (bench/README.md).
    """
    if unsafe_reserve(ctx):
        return await _take_best_unsafe(conn, event_id, hold_id, quantity, section)
    # Where this worker last found the first free seat of this event: the scan starts there,
    # so it does not step over the index entries of every seat sold since the sale began
    # (they stay in the free-seat index, dead, until vacuum). Seats freed behind the mark
    # are found by the full scan that runs whenever the marked one comes up short.
    marks = ctx.resources.setdefault("free_seat_marks", {})
    mark = marks.get((event_id, section))
    chosen: list[Seat] = []
    for start in [mark, None] if mark else [None]:
        window = await _free_seat_window(conn, event_id, section, quantity * WINDOW_FACTOR, start)
        seats = [Seat(r["id"], r["section"], r["row"], r["number"]) for r in window]
        chosen = choose_seats(seats, quantity)
        if chosen:
            marks[(event_id, section)] = (seats[0].section, seats[0].row, seats[0].number)
            break
    if not chosen:
        raise Problem(
            409,
            "tickets_unavailable",
            f"Not enough tickets available for {quantity} seats.",
            unavailable_ticket_ids=[],
        )
    return await conn.fetch(
        f"""UPDATE tickets SET status = 'reserved', hold_id = $1
            WHERE id = ANY($2) RETURNING {_TICKET_COLUMNS}""",
        hold_id,
        [s.ticket_id for s in chosen],
    )


async def _free_seat_window(
    conn: asyncpg.Connection,
    event_id: int,
    section: str | None,
    size: int,
    start: tuple[str, str, int] | None,
) -> list[asyncpg.Record]:
    """The first ``size`` free seats in seat order (from ``start`` on), locked, skipping
    seats other transactions are taking."""
    if start is None:
        return await conn.fetch(
            f"""SELECT {_TICKET_COLUMNS} FROM tickets
                WHERE event_id = $1 AND status = 'available'
                  AND ($2::text IS NULL OR section = $2)
                ORDER BY section, "row", number LIMIT $3
                FOR UPDATE SKIP LOCKED""",
            event_id,
            section,
            size,
        )
    return await conn.fetch(
        f"""SELECT {_TICKET_COLUMNS} FROM tickets
            WHERE event_id = $1 AND status = 'available'
              AND ($2::text IS NULL OR section = $2)
              AND (section, "row", number) >= ($4::text, $5::text, $6::int)
            ORDER BY section, "row", number LIMIT $3
            FOR UPDATE SKIP LOCKED""",
        event_id,
        section,
        size,
        *start,
    )


async def _claim(
    conn: asyncpg.Connection, hold_id: uuid.UUID, ids: list[int], event_id: int
) -> list[asyncpg.Record]:
    """Those of ``ids`` that are free and not being taken by another transaction right now
    (skipped, i.e. reported taken, rather than waited for)."""
    return await conn.fetch(
        f"""UPDATE tickets SET status = 'reserved', hold_id = $1
            WHERE id IN (SELECT id FROM tickets WHERE id = ANY($2) AND event_id = $3
                         AND status = 'available' FOR UPDATE SKIP LOCKED)
            RETURNING {_TICKET_COLUMNS}""",
        hold_id,
        ids,
        event_id,
    )


async def _take_best_unsafe(
    conn: asyncpg.Connection,
    event_id: int,
    hold_id: uuid.UUID,
    quantity: int,
    section: str | None,
) -> list[asyncpg.Record]:
    """The control's read-then-write: no lock, no status condition on the write."""
    rows = await conn.fetch(
        f"""SELECT {_TICKET_COLUMNS} FROM tickets
            WHERE event_id = $1 AND status = 'available' AND ($2::text IS NULL OR section = $2)
            ORDER BY section, "row", number LIMIT $3""",
        event_id,
        section,
        max(CANDIDATES, quantity),
    )
    chosen = choose_seats(
        [Seat(r["id"], r["section"], r["row"], r["number"]) for r in rows], quantity
    )
    if not chosen:
        raise Problem(
            409,
            "tickets_unavailable",
            f"Not enough tickets available for {quantity} seats.",
            unavailable_ticket_ids=[],
        )
    await asyncio.sleep(0.002)
    return await conn.fetch(
        f"""UPDATE tickets SET status = 'reserved', hold_id = $1
            WHERE id = ANY($2) RETURNING {_TICKET_COLUMNS}""",
        hold_id,
        [s.ticket_id for s in chosen],
    )


def is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def request_of(command: dict[str, Any]) -> tuple[list[int], int, str | None]:
    ids = command.get("ticket_ids")
    quantity = command.get("quantity")
    section = command.get("section")
    if ids is not None:
        if not isinstance(ids, list) or not ids or not all(is_id(i) for i in ids):
            raise Problem(400, "validation_error", "ticket_ids must be a list of ticket ids.")
        if len(set(ids)) != len(ids):
            raise Problem(400, "validation_error", "ticket_ids must not repeat a ticket.")
        return list(ids), len(ids), None
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise Problem(400, "validation_error", "quantity must be a positive integer.")
    if section is not None and not isinstance(section, str):
        raise Problem(400, "validation_error", "section must be a string.")
    return [], quantity, section


async def release(ctx: Context, conn: asyncpg.Connection, command: dict[str, Any]) -> Reply:
    hold = await _owned_hold(ctx, conn, command)
    if hold["status"] == "released":
        return 204, None
    if hold["status"] == "confirmed":
        raise Problem(409, "hold_confirmed", "This hold is already paid for; it is a booking.")
    if hold["status"] == "expired" or hold["expired"]:
        # Expire it now rather than wait for the sweeper; the reply keeps that change.
        await expire_holds(conn, hold_ids=[hold["id"]])
        return 409, Problem(409, "hold_expired", "This hold has expired.").to_dict()
    await conn.execute("UPDATE holds SET status = 'released' WHERE id = $1", hold["id"])
    await _free_tickets(conn, [hold["id"]])
    await record_event_changed(conn, hold["event_id"], "availability")
    log.info("hold %s released by %s", hold["id"], command["user_id"])
    return 204, None


async def _owned_hold(
    ctx: Context, conn: asyncpg.Connection, command: dict[str, Any]
) -> asyncpg.Record:
    """The command's hold, locked: 404 hold_not_found, or 403 not_your_hold."""
    try:
        hold_id = uuid.UUID(str(command.get("hold_id")))
    except ValueError as exc:
        raise Problem(404, "hold_not_found", "No such hold.") from exc
    hold = await conn.fetchrow(
        """SELECT id, event_id, user_id, status, expires_at, expires_at <= now() AS expired
           FROM holds WHERE id = $1 FOR UPDATE""",
        hold_id,
    )
    if hold is None:
        raise Problem(404, "hold_not_found", "No such hold.")
    if hold["user_id"] != command["user_id"] and not ctx.is_admin(command):
        raise Problem(403, "not_your_hold", "This hold belongs to another fan.")
    return hold


async def _free_tickets(conn: asyncpg.Connection, hold_ids: list[uuid.UUID]) -> None:
    await conn.execute(
        """UPDATE tickets SET status = 'available', hold_id = NULL
           WHERE hold_id = ANY($1) AND status = 'reserved'""",
        hold_ids,
    )


async def expire_holds(
    conn: asyncpg.Connection,
    *,
    event_id: int | None = None,
    hold_ids: list[uuid.UUID] | None = None,
    limit: int = 500,
) -> int:
    """Mark due holds expired and free their tickets, in the caller's transaction. Holds
    another transaction has locked are skipped: it is already dealing with them."""
    expired = await conn.fetch(
        """UPDATE holds SET status = 'expired'
           WHERE id IN (SELECT id FROM holds
                        WHERE status = 'held' AND expires_at <= now()
                          AND ($1::bigint IS NULL OR event_id = $1)
                          AND ($2::uuid[] IS NULL OR id = ANY($2))
                        ORDER BY expires_at LIMIT $3 FOR UPDATE SKIP LOCKED)
           RETURNING id, event_id""",
        event_id,
        hold_ids,
        limit,
    )
    if not expired:
        return 0
    await _free_tickets(conn, [r["id"] for r in expired])
    await record_event_changed(conn, [r["event_id"] for r in expired], "availability")
    HOLDS_EXPIRED.inc(len(expired))
    log.info("expired %d holds", len(expired))
    return len(expired)
