"""Release and expiry: the ways a hold ends without a booking (holds are made by
booking_worker.reserve, booked by booking_worker.settle)."""

from __future__ import annotations

import logging
import uuid

import asyncpg

from booking_worker.context import Connection, Context, Reply, as_connection
from booking_worker.metrics import HOLDS_EXPIRED
from ticketing.db.outbox import record_event_changed
from ticketing.domain.booking_states import HoldState, Release, hold_state, on_release
from ticketing.messages import Release as ReleaseCommand
from ticketing.problems import Problem

log = logging.getLogger(__name__)


async def release(ctx: Context, conn: Connection, command: ReleaseCommand) -> Reply:
    hold = await _owned_hold(conn, command)
    decision = on_release(hold_state(hold["status"], hold["expired"]))
    if decision is Release.ALREADY_RELEASED:
        return 204, None
    if decision is Release.ALREADY_BOOKED:
        raise Problem(409, "hold_confirmed", "This hold is already paid for; it is a booking.")
    if decision is Release.EXPIRE:
        # Expire it now rather than wait for the sweeper; the reply keeps that change.
        await expire_holds(conn, hold_ids=[hold["id"]])
        return 409, Problem(409, "hold_expired", "This hold has expired.").to_dict()
    await conn.execute(
        "UPDATE holds SET status = $2 WHERE id = $1", hold["id"], HoldState.RELEASED.value
    )
    await _free_tickets(conn, [hold["id"]])
    await record_event_changed(as_connection(conn), hold["event_id"], "availability")
    log.info("hold %s released by %s", hold["id"], command.user_id)
    return 204, None


async def _owned_hold(conn: Connection, command: ReleaseCommand) -> asyncpg.Record:
    """The command's hold, locked: 404 hold_not_found, or 403 not_your_hold."""
    try:
        hold_id = uuid.UUID(command.hold_id)
    except ValueError as exc:
        raise Problem(404, "hold_not_found", "No such hold.") from exc
    hold: asyncpg.Record | None = await conn.fetchrow(
        """SELECT id, event_id, user_id, status, expires_at, expires_at <= now() AS expired
           FROM holds WHERE id = $1 FOR UPDATE""",
        hold_id,
    )
    if hold is None:
        raise Problem(404, "hold_not_found", "No such hold.")
    if hold["user_id"] != command.user_id and not command.is_admin:
        raise Problem(403, "not_your_hold", "This hold belongs to another fan.")
    return hold


async def _free_tickets(conn: Connection, hold_ids: list[uuid.UUID]) -> None:
    await conn.execute(
        """UPDATE tickets SET status = 'available', hold_id = NULL
           WHERE hold_id = ANY($1) AND status = 'reserved'""",
        hold_ids,
    )


async def expire_holds(
    conn: Connection,
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
    await record_event_changed(
        as_connection(conn), [r["event_id"] for r in expired], "availability"
    )
    HOLDS_EXPIRED.inc(len(expired))
    log.info("expired %d holds", len(expired))
    return len(expired)
