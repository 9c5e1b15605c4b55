"""Reserve: the one path that makes holds, for a whole group of fans of one event at once;
a lone reserve is a group of one.

A reserve done statement by statement would be a dozen round trips (event, fan lock, cap,
hold, seat window, claim, hold update, outbox, stored reply, savepoints); at an on-sale most
of a batch is reserves for the same event, so the group is done in a handful, in the
caller's savepoint:

1. the event, the transaction's ``now()``, and every fan's advisory lock (sorted, so two
   workers locking overlapping fans cannot deadlock) — the cap then holds across workers;
2. every fan's tickets held or booked for the event, in one query;
3. the seats: one window of free seats per section asked for (``FOR UPDATE SKIP LOCKED``,
   so concurrent workers skip, never wait for, each other's seats) and the explicitly
   asked seats that are free, locked the same way (booking_worker.seat_rows);
4. deciding, in plain Python and in command order: 404/403/400/422/409 or which seats
   each fan gets (ticketing.domain.booking);
5. one statement writing every hold, every seat, every stored reply and the outbox row.

Every decision is made on rows this transaction has locked, and the write re-checks
``status = 'available'``; if it ever finds fewer seats than decided, the group is undone
(its savepoint) and its commands are tried again each as a group of one.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from booking_worker.context import Connection, Context, Reply
from booking_worker.seat_rows import already_held_or_booked, free_explicit, free_window
from ticketing.domain.booking import (
    InvalidRequest,
    LimitExceeded,
    Refused,
    SeatRequest,
    allocate,
    is_id,
)
from ticketing.domain.booking_shapes import Hold, Ticket
from ticketing.messages import EVENT_CHANGED, Reserve, event_changed
from ticketing.problems import Problem
from ticketing.validation import rfc3339

log = logging.getLogger(__name__)


class GroupConflict(Exception):
    """The write found a seat no longer free: undo the group, go one by one."""


def not_on_sale(on_sale_at: Any) -> Problem:
    """Reserve and confirm before the event's on-sale, with or without a waiting room: a
    bot that knows an event id may not buy before the fans can."""
    return Problem(
        409,
        "not_on_sale",
        "This event is not on sale yet.",
        on_sale_at=rfc3339(on_sale_at),
    )


def refusal(refused: Refused) -> Problem:
    """The problem a fan is answered for a request the reserve rules turn down."""
    if isinstance(refused, LimitExceeded):
        return Problem(
            422, "limit_exceeded", str(refused), limit=refused.cap, held_or_booked=refused.already
        )
    if isinstance(refused, InvalidRequest):
        return Problem(400, "validation_error", str(refused))
    return Problem(
        409,
        "tickets_unavailable",
        str(refused),
        unavailable_ticket_ids=getattr(refused, "ticket_ids", []),
    )


async def reserve_group(
    ctx: Context, conn: Connection, event_id: int | None, commands: list[Reserve]
) -> list[Reply]:
    """(status, body) for each command, in order; every reply is stored. Runs inside the
    caller's savepoint; raises GroupConflict (or a database error) to be undone."""
    replies: list[Reply | None] = [None] * len(commands)
    event = None
    if event_id is not None and is_id(event_id):
        users = sorted({c.user_id for c in commands})
        event = await conn.fetchrow(
            """SELECT queue_enabled, currency, now() AS now, on_sale_at,
                      on_sale_at > now() AS not_yet,
                      (SELECT count(pg_advisory_xact_lock(k)) FROM
                         (SELECT hashtextextended(u, $1) AS k FROM unnest($2::text[]) u
                          ORDER BY k) keys) AS locked,
                      (SELECT p.seats FROM presales p
                        WHERE p.event_id = $1 AND now() < p.general_sale_at) AS presale_seats
               FROM events WHERE id = $1""",
            event_id,
            users,
        )
    asks: dict[int, SeatRequest] = {}
    for i, command in enumerate(commands):
        try:
            asks[i] = _admit(command, event)
        except Problem as problem:
            replies[i] = (problem.status, problem.to_dict())
    holds: list[tuple[int, Hold]] = []
    if asks and event is not None and event_id is not None:  # asks imply the event
        expires_at = event["now"] + timedelta(seconds=ctx.settings.hold_ttl_seconds)
        decided = await _decide(ctx, conn, event_id, commands, asks)
        share = await _presale_share(conn, event_id, event["presale_seats"])
        for i, seats in decided.items():
            if isinstance(seats, Refused):
                refused = refusal(seats)
                replies[i] = (refused.status, refused.to_dict())
                continue
            if share is not None:
                if len(seats) > share:
                    refused = presale_sold_out(share)
                    replies[i] = (refused.status, refused.to_dict())
                    continue
                share -= len(seats)
            hold = Hold(uuid.uuid4(), event_id, tuple(seats), event["currency"], expires_at)
            holds.append((i, hold))
            replies[i] = (201, hold.to_json())
    done = [reply for reply in replies if reply is not None]
    if len(done) != len(commands):
        raise RuntimeError("a reserve of the group was left without a reply")
    await _write(conn, event_id, event, commands, done, holds)
    return done


async def _presale_share(conn: Connection, event_id: int, seats: int | None) -> int | None:
    """Seats the event's registered presale may still hold or sell (None: no presale
    under way; waitingroom/queue/presale*.py, migration 0008): its share less every seat
    held or sold now. Counted under the presale's lock, held to the end of the batch, so
    reserves in other workers wait for this one's seats to count."""
    if seats is None:
        return None
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('presale_share:' || $1::bigint::text, 0))",
        event_id,
    )
    taken: int = await conn.fetchval(
        "SELECT count(*) FROM tickets WHERE event_id = $1 AND status <> 'available'", event_id
    )
    return max(0, seats - taken)


def presale_sold_out(left: int) -> Problem:
    return Problem(
        409,
        "presale_sold_out",
        "The presale's share of the seats is taken"
        + (f" but for {left}: ask for fewer." if left else ": the general sale follows."),
        seats_left=left,
    )


def _admit(command: Reserve, event: asyncpg.Record | None) -> SeatRequest:
    """What the fan asks for, if this reserve may go on to the seats; else a Problem."""
    if command.replay_only:
        # The front door found the fan's admission over and asks only whether this request
        # was applied before (its stored reply is answered before any reserve runs). It was
        # not: refuse, and the refusal is stored, so the original, should it still be on its
        # way, finds it and does not hold seats for a fan who was sent back to the line.
        raise Problem(
            403, "admission_invalid", "No reserve with this Idempotency-Key was made in time."
        )
    if event is None:
        raise Problem(404, "event_not_found", "No such event.")
    if event["not_yet"]:
        raise not_on_sale(event["on_sale_at"])
    if event["queue_enabled"] and command.admitted is not True:
        raise Problem(
            403, "admission_required", "This event has a waiting room: join the queue first."
        )
    try:
        return SeatRequest.of(command.ticket_ids, command.quantity, command.section)
    except InvalidRequest as exc:
        raise refusal(exc) from exc


async def _decide(
    ctx: Context,
    conn: Connection,
    event_id: int,
    commands: list[Reserve],
    asks: dict[int, SeatRequest],
) -> dict[int, list[Ticket] | Refused]:
    users = sorted({commands[i].user_id for i in asks})
    already = await already_held_or_booked(conn, event_id, users)
    explicit = sorted({t for ask in asks.values() for t in ask.ticket_ids})
    free_by_id = await free_explicit(conn, event_id, explicit) if explicit else {}
    wanted: dict[str | None, int] = defaultdict(int)
    for ask in asks.values():
        if not ask.ticket_ids:
            wanted[ask.section] += ask.quantity
    marks = ctx.resources.setdefault("free_seat_marks", {})
    windows = {
        section: await free_window(conn, marks, event_id, section, count)
        for section, count in wanted.items()
    }
    order = list(asks)
    decided = allocate(
        [(commands[i].user_id, asks[i]) for i in order],
        already,
        ctx.settings.max_tickets_per_user,
        free_by_id,
        windows,
    )
    return dict(zip(order, decided, strict=True))


async def _write(
    conn: Connection,
    event_id: int | None,
    event: asyncpg.Record | None,
    commands: list[Reserve],
    replies: list[Reply],
    holds: list[tuple[int, Hold]],
) -> None:
    """Holds, seats, stored replies and the outbox row in one statement (parent rows and
    the seats that point at them: foreign keys are checked at the end of the statement)."""
    seat_ids = [t.id for _, hold in holds for t in hold.tickets]
    seat_holds = [hold.id for _, hold in holds for _ in hold.tickets]
    expires_at: datetime | None = holds[0][1].expires_at if holds else None
    held = await conn.fetchval(
        """WITH new_holds AS (
               INSERT INTO holds (id, event_id, user_id, status, amount_cents, currency,
                                  request_id, expires_at, ticket_ids)
               SELECT h.id, $1, h.user_id, 'held', h.amount, $2, h.request_id, $3,
                      ARRAY(SELECT s.id FROM unnest($7::bigint[], $8::uuid[]) s(id, hold)
                            WHERE s.hold = h.id ORDER BY s.id)
               FROM unnest($4::uuid[], $5::text[], $6::bigint[], $9::text[])
                    AS h(id, user_id, amount, request_id)
               RETURNING id
           ), seats AS (
               UPDATE tickets t SET status = 'reserved', hold_id = s.hold
               FROM unnest($7::bigint[], $8::uuid[]) AS s(id, hold)
               WHERE t.id = s.id AND t.event_id = $1 AND t.status = 'available'
               RETURNING t.id
           ), stored AS (
               INSERT INTO processed_commands (request_id, type, reply)
               SELECT * FROM unnest($10::text[], $11::text[], $12::jsonb[])
           ), announced AS (
               INSERT INTO outbox (topic, aggregate_id, payload)
               SELECT $13, $15, $14::jsonb WHERE cardinality($4::uuid[]) > 0
           )
           SELECT count(*) FROM seats""",
        event_id if event is not None else None,
        event["currency"] if event is not None else None,
        expires_at,
        [hold.id for _, hold in holds],
        [commands[i].user_id for i, _ in holds],
        [hold.amount_cents for _, hold in holds],
        seat_ids,
        seat_holds,
        [commands[i].request_id for i, _ in holds],
        [c.request_id for c in commands],
        [c.kind for c in commands],
        [orjson.dumps({"status": s, "body": b}).decode() for s, b in replies],
        EVENT_CHANGED,
        json.dumps(event_changed(event_id, "availability")) if holds and event_id else None,
        str(event_id),
    )
    if held != len(seat_ids):
        raise GroupConflict(f"{len(seat_ids) - held} decided seats were no longer free")
    if holds:
        log.info("holds: event_id=%s count=%d seats=%d", event_id, len(holds), len(seat_ids))
