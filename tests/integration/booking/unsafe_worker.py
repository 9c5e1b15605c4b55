"""``python -m tests.integration.booking.unsafe_worker``: a real booking worker process
whose reserve takes seats the naive way, the control of the race test (booking/test_race).

The production reserve (booking_worker.reserve) locks the seats it decides on with ``FOR
UPDATE SKIP LOCKED`` and writes them only while still ``available``. This one reads free
seats without a lock, waits a moment (a fan's think time is far longer), and writes them
whatever they became meanwhile: two workers can then give one seat to two fans, which the
race test must catch. It lives here, not behind a switch in the worker, so no deployment
can ever run it.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import timedelta

import asyncpg
import orjson

from booking_worker import commands
from booking_worker.__main__ import main
from booking_worker.context import Context, Reply
from ticketing.domain.booking import choose_seats
from ticketing.domain.booking_shapes import Hold, Ticket
from ticketing.messages import Reserve
from ticketing.problems import Problem

# Free seats read per request, as the earlier unprotected design did.
CANDIDATES = 200
THINK_SECONDS = 0.002


async def unsafe_reserve_group(
    ctx: Context, conn: asyncpg.Connection, event_id: int | None, group: list[Reserve]
) -> list[Reply]:
    """Each reserve of the group read-then-write, its reply stored as the real path does."""
    replies = [await _unsafe_reserve(ctx, conn, event_id, command) for command in group]
    await conn.executemany(
        "INSERT INTO processed_commands (request_id, type, reply) VALUES ($1, $2, $3::jsonb)",
        [
            (c.request_id, c.kind, orjson.dumps({"status": s, "body": b}).decode())
            for c, (s, b) in zip(group, replies, strict=True)
        ],
    )
    return replies


async def _unsafe_reserve(
    ctx: Context, conn: asyncpg.Connection, event_id: int | None, command: Reserve
) -> Reply:
    event = await conn.fetchrow(
        "SELECT currency, now() AS now FROM events WHERE id = $1", event_id or 0
    )
    if event is None:
        return 404, Problem(404, "event_not_found", "No such event.").to_dict()
    if command.ticket_ids:
        rows = await conn.fetch(
            """SELECT id, section, "row", number, price_cents FROM tickets
               WHERE id = ANY($1) AND event_id = $2 AND status = 'available'""",
            list(command.ticket_ids),
            event_id,
        )
        chosen = [Ticket.of(r) for r in rows] if len(rows) == len(command.ticket_ids) else []
    else:
        rows = await conn.fetch(
            """SELECT id, section, "row", number, price_cents FROM tickets
               WHERE event_id = $1 AND status = 'available'
               ORDER BY section, "row", number LIMIT $2""",
            event_id,
            max(CANDIDATES, command.quantity or 0),
        )
        chosen = choose_seats([Ticket.of(r) for r in rows], command.quantity or 0)
    if not chosen:
        problem = Problem(
            409, "tickets_unavailable", "Not enough tickets.", unavailable_ticket_ids=[]
        )
        return problem.status, problem.to_dict()
    await asyncio.sleep(THINK_SECONDS)
    expires_at = event["now"] + timedelta(seconds=ctx.settings.hold_ttl_seconds)
    hold = Hold(
        uuid.uuid4(),
        event_id or 0,
        tuple(sorted(chosen, key=lambda t: t.id)),
        event["currency"],
        expires_at,
    )
    await conn.execute(
        """INSERT INTO holds (id, event_id, user_id, status, amount_cents, currency,
                              request_id, expires_at, ticket_ids)
           VALUES ($1, $2, $3, 'held', $4, $5, $6, $7, $8)""",
        hold.id,
        hold.event_id,
        command.user_id,
        hold.amount_cents,
        hold.currency,
        command.request_id,
        expires_at,
        [t.id for t in hold.tickets],
    )
    # No "AND status = 'available'": whatever happened to these seats since they were read.
    await conn.execute(
        "UPDATE tickets SET status = 'reserved', hold_id = $1 WHERE id = ANY($2)",
        hold.id,
        [t.id for t in hold.tickets],
    )
    return 201, hold.to_json()


if __name__ == "__main__":
    commands.reserve_group = unsafe_reserve_group  # type: ignore[assignment]
    sys.exit(main())
