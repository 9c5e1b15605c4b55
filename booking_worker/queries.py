"""Read-only commands: a ticket's status, one booking, a fan's bookings.

``booking_json`` is the one Booking shape (also what confirm answers with)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from booking_worker.handlers import Context, Reply
from booking_worker.holds import is_id
from ticketing.problems import Problem
from ticketing.validation import encode_cursor, rfc3339


async def booking_json(conn: asyncpg.Connection, booking_ids: list[uuid.UUID]) -> list[dict]:
    """Bookings in the order of ``booking_ids``, with their tickets."""
    rows = await conn.fetch(
        """SELECT b.id, b.hold_id, b.status, b.amount_cents, b.currency, b.payment_intent_id,
                  b.created_at,
                  coalesce(json_agg(json_build_object(
                      'id', t.id,
                      'seat', json_build_object('section', t.section, 'row', t."row",
                                                'number', t.number),
                      'price_cents', t.price_cents) ORDER BY t.id)
                    FILTER (WHERE t.id IS NOT NULL), '[]')::text AS tickets
           FROM bookings b LEFT JOIN tickets t ON t.booking_id = b.id
           WHERE b.id = ANY($1) GROUP BY b.id""",
        booking_ids,
    )

    by_id = {
        r["id"]: {
            "booking_id": str(r["id"]),
            "hold_id": str(r["hold_id"]),
            "status": r["status"],
            "tickets": json.loads(r["tickets"]),
            "amount_cents": r["amount_cents"],
            "currency": r["currency"],
            "payment_intent_id": r["payment_intent_id"],
            "created_at": rfc3339(r["created_at"]),
        }
        for r in rows
    }
    return [by_id[i] for i in booking_ids if i in by_id]


async def ticket_status(ctx: Context, conn: asyncpg.Connection, command: dict[str, Any]) -> Reply:
    ticket_id = command.get("ticket_id")
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
    user, admin = command["user_id"], ctx.is_admin(command)
    status = row["status"]
    body: dict[str, Any] = {"ticket_id": row["id"], "status": status}
    if status == "reserved" and not row["hold_live"]:
        # Its hold ran out; the sweeper frees it shortly, and nobody may rely on it meanwhile.
        body["status"] = "available"
    elif status == "reserved" and (admin or row["hold_user"] == user):
        body["hold_id"] = str(row["hold_id"])
        body["expires_at"] = rfc3339(row["expires_at"])
    elif status == "booked" and (admin or row["booking_user"] == user):
        body["booking_id"] = str(row["booking_id"])
    return 200, body


async def get_booking(ctx: Context, conn: asyncpg.Connection, command: dict[str, Any]) -> Reply:
    not_found = Problem(404, "booking_not_found", "No such booking.")
    try:
        booking_id = uuid.UUID(str(command.get("booking_id")))
    except ValueError as exc:
        raise not_found from exc
    owner = await conn.fetchval("SELECT user_id FROM bookings WHERE id = $1", booking_id)
    if owner is None or (owner != command["user_id"] and not ctx.is_admin(command)):
        raise not_found
    return 200, (await booking_json(conn, [booking_id]))[0]


async def list_bookings(ctx: Context, conn: asyncpg.Connection, command: dict[str, Any]) -> Reply:
    """The caller's bookings, newest first; the cursor is (created_at, id) of the last one."""
    limit = command.get("limit", 20)
    cursor = command.get("cursor")
    if not isinstance(limit, int) or not 1 <= limit <= 100:
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
        command["user_id"],
        after_at,
        after_id,
        limit + 1,
    )
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor(last["created_at"].isoformat(), str(last["id"]))
    items = await booking_json(conn, [r["id"] for r in page])
    return 200, {"items": items, "next_cursor": next_cursor}
