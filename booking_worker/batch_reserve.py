"""Reserve for many fans of one event in a handful of statements.

A reserve done alone is a dozen round trips (event, fan lock, cap, hold, seat window, claim,
hold update, outbox, stored reply, savepoints); at an on-sale most of a batch is reserves
for the same event, so this does the whole group at once, in the batch transaction:

1. the event, the transaction's ``now()``, and every fan's advisory lock (sorted, so two
   workers locking overlapping fans cannot deadlock) — the cap then holds across workers;
2. every fan's tickets held or booked for the event, in one query;
3. the seats: one window of free seats per section asked for (``FOR UPDATE SKIP LOCKED``,
   so concurrent workers skip, never wait for, each other's seats) and the explicitly
   asked seats that are free, locked the same way;
4. deciding, in plain Python and in command order: 404/403/400/422/409 or which seats
   each fan gets (adjacent when the window has such a run, ticketing.domain.booking);
5. one statement writing every hold, every seat, every stored reply and the outbox row.

Every decision is made on rows this transaction has locked, and the write re-checks
``status = 'available'``; if it ever finds fewer seats than decided, the group is undone
(its savepoint) and its commands run one by one on the careful path instead.
"""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from booking_worker.handlers import Context
from booking_worker.holds import is_id, not_on_sale, request_of
from ticketing.domain.booking import LimitExceeded, Seat, check_cap, choose_seats
from ticketing.messages import EVENT_CHANGED, event_changed
from ticketing.problems import Problem
from ticketing.validation import rfc3339

log = logging.getLogger(__name__)

# Free seats locked per seat asked for: room to find adjacent runs, while leaving most of
# the house to the other workers' windows.
WINDOW_FACTOR = 2
WINDOW_SLACK = 16
# Candidates one fan's seats are chosen among (the window's first free seats).
CHOICE_FACTOR = 4

_SEAT_COLUMNS = 'id, section, "row", number, price_cents'


class GroupConflict(Exception):
    """The write found a seat no longer free: undo the group, go one by one."""


@dataclass(slots=True)
class _Ask:
    command: dict[str, Any]
    ticket_ids: list[int]
    quantity: int
    section: str | None


async def reserve_group(
    ctx: Context, conn: asyncpg.Connection, event_id: Any, commands: list[dict[str, Any]]
) -> list[tuple[int, dict[str, Any]]]:
    """(status, body) for each command, in order; every reply is stored. Runs inside the
    caller's savepoint; raises GroupConflict (or a database error) to be undone."""
    replies: list[tuple[int, dict[str, Any]] | None] = [None] * len(commands)
    event = None
    if is_id(event_id):
        users = sorted({c["user_id"] for c in commands})
        event = await conn.fetchrow(
            """SELECT queue_enabled, currency, now() AS now, on_sale_at,
                      on_sale_at > now() AS not_yet,
                      (SELECT count(pg_advisory_xact_lock(k)) FROM
                         (SELECT hashtextextended(u, $1) AS k FROM unnest($2::text[]) u
                          ORDER BY k) keys) AS locked
               FROM events WHERE id = $1""",
            event_id,
            users,
        )
    asks: dict[int, _Ask] = {}
    for i, command in enumerate(commands):
        try:
            if event is None:
                raise Problem(404, "event_not_found", "No such event.")
            if event["not_yet"]:
                raise not_on_sale(event["on_sale_at"])
            if event["queue_enabled"] and command.get("admitted") is not True:
                raise Problem(
                    403,
                    "admission_required",
                    "This event has a waiting room: join the queue first.",
                )
            asks[i] = _Ask(command, *request_of(command))
        except Problem as problem:
            replies[i] = (problem.status, problem.to_dict())
    holds: list[tuple[int, uuid.UUID, list[asyncpg.Record]]] = []
    if asks:
        assert event is not None
        holds = await _decide(ctx, conn, event_id, asks, replies)
    expires_at = event["now"] + timedelta(seconds=ctx.settings.hold_ttl_seconds) if event else None
    for i, hold_id, seats in holds:
        assert event is not None and expires_at is not None
        replies[i] = (201, _hold_body(hold_id, event_id, event["currency"], seats, expires_at))
    done = [reply for reply in replies if reply is not None]
    assert len(done) == len(commands)
    await _write(conn, event_id, event, expires_at, commands, done, holds)
    return done


async def _decide(
    ctx: Context,
    conn: asyncpg.Connection,
    event_id: int,
    asks: dict[int, _Ask],
    replies: list[Any],
) -> list[tuple[int, uuid.UUID, list[asyncpg.Record]]]:
    users = sorted({a.command["user_id"] for a in asks.values()})
    rows = await conn.fetch(
        """SELECT u AS user_id,
                  (SELECT coalesce(sum(cardinality(ticket_ids)), 0) FROM holds
                    WHERE user_id = u AND event_id = $1 AND status = 'held'
                      AND expires_at > now())
                + (SELECT count(*) FROM tickets t JOIN bookings b ON b.id = t.booking_id
                    WHERE b.user_id = u AND b.event_id = $1 AND b.status = 'confirmed')
                  AS already
           FROM unnest($2::text[]) u""",
        event_id,
        users,
    )
    already = {r["user_id"]: r["already"] for r in rows}
    explicit = sorted({t for a in asks.values() for t in a.ticket_ids})
    free_explicit: dict[int, asyncpg.Record] = {}
    if explicit:
        free_explicit = {
            r["id"]: r
            for r in await conn.fetch(
                f"""SELECT {_SEAT_COLUMNS} FROM tickets
                    WHERE id = ANY($1) AND event_id = $2 AND status = 'available'
                    ORDER BY id FOR UPDATE SKIP LOCKED""",
                explicit,
                event_id,
            )
        }
    wanted: dict[str | None, int] = defaultdict(int)
    for ask in asks.values():
        if not ask.ticket_ids:
            wanted[ask.section] += ask.quantity
    windows = {
        section: await _window(ctx, conn, event_id, section, count)
        for section, count in wanted.items()
    }
    cap = ctx.settings.max_tickets_per_user
    taken: set[int] = set()
    holds = []
    for i, ask in asks.items():
        user = ask.command["user_id"]
        try:
            check_cap(cap, already[user], ask.quantity)
        except LimitExceeded as exc:
            problem = Problem(
                422, "limit_exceeded", str(exc), limit=exc.cap, held_or_booked=exc.already
            )
            replies[i] = (problem.status, problem.to_dict())
            continue
        if ask.ticket_ids:
            missing = [t for t in ask.ticket_ids if t not in free_explicit or t in taken]
            if missing:
                replies[i] = _unavailable(
                    "Some of these tickets are no longer available.", sorted(missing)
                )
                continue
            seats = [free_explicit[t] for t in ask.ticket_ids]
        else:
            seats = windows[ask.section].take(ask.quantity, taken)
            if not seats:
                replies[i] = _unavailable(
                    f"Not enough tickets available for {ask.quantity} seats.", []
                )
                continue
        # A seat can be both in a window and asked for by id: whoever comes first has it.
        taken.update(r["id"] for r in seats)
        already[user] += len(seats)
        holds.append((i, uuid.uuid4(), sorted(seats, key=lambda r: r["id"])))
    return holds


_WINDOW_FROM_START = f"""SELECT {_SEAT_COLUMNS} FROM tickets
    WHERE event_id = $1 AND status = 'available' AND ($2::text IS NULL OR section = $2)
    ORDER BY section, "row", number LIMIT $3
    FOR UPDATE SKIP LOCKED"""
# Separate text, not an "$4 IS NULL OR ..." condition: a generic plan could not start the
# index scan at the mark.
_WINDOW_FROM_MARK = f"""SELECT {_SEAT_COLUMNS} FROM tickets
    WHERE event_id = $1 AND status = 'available' AND ($2::text IS NULL OR section = $2)
      AND (section, "row", number) >= ($4::text, $5::text, $6::int)
    ORDER BY section, "row", number LIMIT $3
    FOR UPDATE SKIP LOCKED"""


async def _window(
    ctx: Context, conn: asyncpg.Connection, event_id: int, section: str | None, count: int
) -> _Window:
    """Free seats for ``count`` asked, in seat order, locked; from this worker's mark of
    where the first free seat was last found (the scan then does not step over every seat
    sold since the last vacuum), or from the start when the mark comes up short."""
    size = count * WINDOW_FACTOR + WINDOW_SLACK
    marks = ctx.resources.setdefault("free_seat_marks", {})
    mark = marks.get((event_id, section))
    rows: list[asyncpg.Record] = []
    if mark:
        rows = await conn.fetch(_WINDOW_FROM_MARK, event_id, section, size, *mark)
    if len(rows) < count:
        rows = await conn.fetch(_WINDOW_FROM_START, event_id, section, size)
    if rows:
        marks[(event_id, section)] = (rows[0]["section"], rows[0]["row"], rows[0]["number"])
    return _Window(rows)


class _Window:
    """A locked window of free seats in seat order, handed out front first."""

    def __init__(self, rows: list[asyncpg.Record]) -> None:
        self.rows = {r["id"]: r for r in rows}
        self.seats = [Seat(r["id"], r["section"], r["row"], r["number"]) for r in rows]
        self.front = 0  # seats before it are all taken

    def take(self, quantity: int, taken: set[int]) -> list[asyncpg.Record]:
        """``quantity`` seats nobody took yet, adjacent if the first free ones hold such a
        run: choose among ``quantity x CHOICE_FACTOR`` candidates from the front, which
        keeps each choice small however large the batch's window is."""
        while self.front < len(self.seats) and self.seats[self.front].ticket_id in taken:
            self.front += 1
        candidates: list[Seat] = []
        for seat in itertools.islice(self.seats, self.front, None):
            if seat.ticket_id not in taken:
                candidates.append(seat)
                if len(candidates) == quantity * CHOICE_FACTOR:
                    break
        return [self.rows[s.ticket_id] for s in choose_seats(candidates, quantity)]


def _unavailable(detail: str, ids: list[int]) -> tuple[int, dict[str, Any]]:
    problem = Problem(409, "tickets_unavailable", detail, unavailable_ticket_ids=ids)
    return problem.status, problem.to_dict()


def _hold_body(
    hold_id: uuid.UUID,
    event_id: int,
    currency: str,
    seats: list[asyncpg.Record],
    expires_at: datetime,
) -> dict[str, Any]:
    tickets = [
        {
            "id": r["id"],
            "seat": {"section": r["section"], "row": r["row"], "number": r["number"]},
            "price_cents": r["price_cents"],
        }
        for r in seats
    ]
    return {
        "hold_id": str(hold_id),
        "event_id": event_id,
        "tickets": tickets,
        "amount_cents": sum(t["price_cents"] for t in tickets),
        "currency": currency,
        "expires_at": rfc3339(expires_at),
        "status": "held",
    }


async def _write(
    conn: asyncpg.Connection,
    event_id: Any,
    event: asyncpg.Record | None,
    expires_at: datetime | None,
    commands: list[dict[str, Any]],
    replies: list[tuple[int, dict[str, Any]]],
    holds: list[tuple[int, uuid.UUID, list[asyncpg.Record]]],
) -> None:
    """Holds, seats, stored replies and the outbox row in one statement (parent rows and
    the seats that point at them: foreign keys are checked at the end of the statement)."""
    seat_ids = [r["id"] for _, _, seats in holds for r in seats]
    seat_holds = [hold_id for _, hold_id, seats in holds for _ in seats]
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
        [hold_id for _, hold_id, _ in holds],
        [commands[i]["user_id"] for i, _, _ in holds],
        [sum(r["price_cents"] for r in seats) for _, _, seats in holds],
        seat_ids,
        seat_holds,
        [commands[i]["request_id"] for i, _, _ in holds],
        [c["request_id"] for c in commands],
        [c["type"] for c in commands],
        [orjson.dumps({"status": s, "body": b}).decode() for s, b in replies],
        EVENT_CHANGED,
        json.dumps(event_changed(event_id, "availability")) if holds else None,
        str(event_id),
    )
    if held != len(seat_ids):
        raise GroupConflict(f"{len(seat_ids) - held} decided seats were no longer free")
    if holds:
        log.info("holds: event_id=%s count=%d seats=%d", event_id, len(holds), len(seat_ids))
