"""Confirming a hold: record a payment attempt, charge it, then settle it in one transaction.

The Stripe call never runs inside a transaction: seat and hold locks are held only for the
short write before it (the attempt row, committed 'pending') and the short write after it
(booking, tickets, payment, hold, outbox together). A crash between Stripe's success and
our write leaves the attempt 'pending' with a PaymentIntent whose metadata names the hold,
the attempt and the seats; the ``payment_intent.succeeded`` webhook or the next confirm of
the hold (which looks the attempt up in Stripe) settles it, so no payment is ever lost.

One idempotency key per attempt, derived from the command's request id: a redelivered
command reuses its attempt, a fan's retry after a declined card is a new attempt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from booking_worker.attempt_locks import AttemptLocks
from booking_worker.context import Context
from booking_worker.metrics import CONFIRMS, PAYMENTS, REFUNDS
from booking_worker.reserve import not_on_sale
from ticketing.db.outbox import record_event_changed
from ticketing.domain.booking_shapes import Booking, tickets_of
from ticketing.domain.booking_states import (
    SETTLED,
    STORED_STATUS,
    AttemptState,
    BeforeCharge,
    attempt_state,
    before_charge,
    hold_state,
    seats_still_free,
    settle,
)
from ticketing.messages import EVENT_CHANGED, Confirm, event_changed
from ticketing.payments import (
    PaymentDeclined,
    Payments,
    PaymentUnavailable,
    intent_metadata,
)
from ticketing.problems import Problem

log = logging.getLogger(__name__)

Reply = tuple[int, dict[str, Any]]

# An attempt in the "refund due" state (ticketing.domain.booking_states), as stored.
REFUND_DUE = "status = 'succeeded' AND failure_code IS NOT NULL"
# An attempt younger than this may still be waiting on Stripe in another worker.
ATTEMPT_LEASE_SECONDS = 30.0
# How far Stripe's clock and ours may disagree when looking for an attempt's intent.
CLOCK_MARGIN_SECONDS = 300.0
# How long a second confirm of the same hold waits for the first one's answer.
WAIT_FOR_OTHER_ATTEMPT_SECONDS = 3.0


def _problem(status: int, code: str, detail: str, **extra: Any) -> Reply:
    return status, Problem(status, code, detail, **extra).to_dict()


def hold_not_found() -> Reply:
    return _problem(404, "hold_not_found", "No such hold.")


def hold_expired() -> Reply:
    return _problem(409, "hold_expired", "The hold expired; its seats may have been released.")


def payment_failed(code: str | None) -> Reply:
    return _problem(
        402,
        "payment_failed",
        "The payment was declined; the hold is kept until it expires.",
        decline_code=code,
    )


def payment_unavailable() -> Reply:
    return _problem(
        503,
        "backend_unavailable",
        "The payment provider did not answer; the hold is kept. Retry with the same"
        " Idempotency-Key to complete the payment or learn its outcome.",
    )


@dataclass(frozen=True, slots=True)
class Settled:
    """What settling a successful payment did: booked the seats, or owes a refund."""

    booking_id: uuid.UUID | None
    refund_due: bool
    # The new booking's body when this call booked it (booking_body's form), so a confirm
    # answers without reading back what it just wrote.
    booking: dict[str, Any] | None = None


async def handle_confirm(ctx: Context, conn: asyncpg.Connection, command: Confirm) -> Reply:
    """CONFIRM from a partition queue's batch (a front door older than the payments
    stage); ``conn`` is not used, see :func:`confirm_payment`."""
    return await confirm_payment(ctx, command)


async def confirm_payment(ctx: Context, command: Confirm) -> Reply:
    """The worker's CONFIRM entry point. It works on short-lived connections of its own:
    the attempt row must commit before Stripe is called, and no connection or lock may be
    held while Stripe thinks."""
    pool, payments = await payment_resources(ctx)
    try:
        reply = await confirm_hold(pool, payments, ctx.resources["payments.locks"], command)
    except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError):
        reply = _problem(503, "backend_unavailable", "The hold is busy; try again.")
    status, body = reply
    CONFIRMS.labels("confirmed" if status < 400 else str((body or {}).get("code"))).inc()
    return reply


async def payment_resources(ctx: Context) -> tuple[asyncpg.Pool, Payments]:
    """The process's Stripe client, the pool its two-phase writes use and its attempt
    locks, made once."""
    if "payments" in ctx.resources:  # twice per payment: no lock to take once made
        return ctx.resources["payments.pool"], ctx.resources["payments"]
    lock = ctx.resources.setdefault("payments.lock", asyncio.Lock())
    async with lock:
        if "payments" not in ctx.resources:
            ctx.resources["payments.pool"] = await asyncpg.create_pool(
                ctx.settings.database_url,
                min_size=1,
                # Each payment in flight uses a connection only for its short writes before
                # and after Stripe's answer, so a few serve dozens of payments.
                max_size=8,
                # Fail fast rather than wait on a lock a batch transaction holds.
                server_settings={"lock_timeout": "2000"},
                reset=_reset_payment_connection,
            )
            ctx.resources["payments.locks"] = AttemptLocks(ctx.settings.database_url)
            ctx.resources["payments"] = Payments(ctx.settings)
    return ctx.resources["payments.pool"], ctx.resources["payments"]


# Server pids of pooled connections that may hold a refund's session advisory lock
# (complete_due_refunds), from just before it is asked for until it is let go.
_MAY_HOLD_SESSION_LOCKS: set[int] = set()


async def _reset_payment_connection(conn: asyncpg.Connection) -> None:
    """The payments pool's reset on release, in place of asyncpg's default: that one sends
    ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` every time, a round trip
    for each of a confirm's several short uses of the pool, to undo what no user of this
    pool leaves behind. asyncpg rolls back a transaction left open before it calls this.
    Nothing else on these connections outlives a transaction: nothing LISTENs on them
    (pg_notify from the outbox trigger only sends), nothing SETs (lock_timeout is a startup
    setting, which RESET ALL would keep anyway), cursors live only inside transactions, and
    the only session advisory locks are refunds' (attempt locks have a connection of their
    own, booking_worker.attempt_locks), which mark their connection here until released,
    so an interrupted refund's lock is let go before the connection serves anyone else."""
    pid = conn.get_server_pid()
    if pid in _MAY_HOLD_SESSION_LOCKS:
        await conn.execute("SELECT pg_advisory_unlock_all()")
        _MAY_HOLD_SESSION_LOCKS.discard(pid)


async def close_payment_resources(ctx: Context) -> None:
    if "payments" in ctx.resources:
        await ctx.resources.pop("payments").close()
        await ctx.resources.pop("payments.locks").close()
        await ctx.resources.pop("payments.pool").close()


async def confirm_hold(
    pool: asyncpg.Pool, payments: Payments, locks: AttemptLocks, command: Confirm
) -> Reply:
    """The CONFIRM command; ``locks`` are the worker process's attempt locks."""
    try:
        hold_id = uuid.UUID(command.hold_id)
    except ValueError:
        return hold_not_found()
    payment_method = command.payment_method
    if not payment_method:
        return _problem(400, "validation_error", "payment_method is required.")
    attempt_key = f"confirm:{hold_id}:{command.request_id}"

    deadline = time.monotonic() + WAIT_FOR_OTHER_ATTEMPT_SECONDS
    async with locks.hold(attempt_key, deadline) as alone:
        if not alone:
            return payment_in_progress()
        return await _confirm(
            pool, payments, hold_id, command.user_id, payment_method, attempt_key, deadline
        )


def payment_in_progress() -> Reply:
    """Another copy of this payment, or another payment of the hold, is with Stripe now.
    Never stored as the command's answer (booking_worker.commands): a retry of the same
    request must find out how that payment ended."""
    return _problem(
        409, "payment_in_progress", "This payment is being made right now; retry shortly."
    )


async def _confirm(
    pool: asyncpg.Pool,
    payments: Payments,
    hold_id: uuid.UUID,
    user_id: str,
    payment_method: str,
    attempt_key: str,
    deadline: float,
) -> Reply:
    try:
        started = await _start_attempt(pool, payments, hold_id, user_id, attempt_key, deadline)
        if not isinstance(started, _Attempt):
            return started
        try:
            outcome = await payments.charge(
                idempotency_key=started.key,
                amount_cents=started.amount_cents,
                currency=started.currency,
                payment_method=payment_method,
                metadata=intent_metadata(str(hold_id), str(started.id), started.ticket_ids),
            )
        except PaymentUnavailable as exc:
            PAYMENTS.labels("error").inc()
            if not exc.reached and started.fresh:
                # Stripe never received this attempt, so nothing of it is in progress: drop
                # it, or a retry with another Idempotency-Key would wait out its lease. A
                # reused attempt is kept: an earlier try of it may have reached Stripe.
                await pool.execute(
                    "DELETE FROM payments WHERE id = $1 AND status = 'pending'", started.id
                )
            raise
        PAYMENTS.labels("declined" if isinstance(outcome, PaymentDeclined) else "succeeded").inc()
    except PaymentUnavailable as exc:
        # The attempt stays 'pending'; the webhook or the next confirm settles it.
        log.warning("stripe unavailable hold_id=%s: %s", hold_id, exc)
        return payment_unavailable()
    if isinstance(outcome, PaymentDeclined):
        await _record_failure(pool, started.id, outcome.code, outcome.payment_intent_id)
        log.info("payment declined hold_id=%s code=%s", hold_id, outcome.code)
        return payment_failed(outcome.code)
    async with pool.acquire() as conn:
        settled = await settle_success(
            conn, started.id, outcome.payment_intent_id, started.ticket_ids
        )
    return await _reply_for(pool, payments, hold_id, settled)


@dataclass(frozen=True, slots=True)
class _Attempt:
    id: uuid.UUID
    key: str
    amount_cents: int
    currency: str
    ticket_ids: list[int]
    fresh: bool  # recorded by this confirm, not found from an earlier try of its key


# The hold being paid for, locked, if it is the caller's. Every check before the charge is
# read under this lock, and the statement after it reads the hold's attempts with a snapshot
# taken once the lock is held: one statement doing both would read them as they were before
# it waited for the lock, and miss an attempt that the holder of the lock just committed.
_LOCK_HOLD = """
SELECT h.status, h.amount_cents, h.currency, h.expires_at <= now() AS past,
       e.on_sale_at, e.on_sale_at > now() AS not_yet
FROM holds h JOIN events e ON e.id = h.event_id
WHERE h.id = $1 AND h.user_id = $2
FOR UPDATE OF h"""

# Under the hold's lock, in one round trip: this key's attempt, the hold's other attempts
# still deciding, the hold's seats, and a new 'pending' attempt when the hold may be charged
# ($6) and there is neither.
_START_ATTEMPT = """
WITH mine AS (
    SELECT id, status, failure_code, created_at FROM payments WHERE idempotency_key = $2
), others AS (
    SELECT id, created_at FROM payments
    WHERE hold_id = $1 AND status = 'pending' AND idempotency_key <> $2
), inserted AS (
    INSERT INTO payments (id, hold_id, idempotency_key, amount_cents, currency, status)
    SELECT $3, $1, $2, $4, $5, 'pending'
    WHERE $6 AND NOT EXISTS (SELECT FROM mine) AND NOT EXISTS (SELECT FROM others)
    RETURNING id
)
SELECT m.id AS mine_id, m.status AS mine_status, m.failure_code AS mine_failure_code,
       m.created_at AS mine_created_at, now() AS now,
       ARRAY(SELECT id FROM others ORDER BY created_at) AS other_ids,
       ARRAY(SELECT created_at FROM others ORDER BY created_at) AS other_created_at,
       ARRAY(SELECT id FROM tickets WHERE hold_id = $1 AND status = 'reserved' ORDER BY id)
           AS ticket_ids,
       EXISTS (SELECT FROM inserted) AS inserted
FROM (SELECT) AS one LEFT JOIN mine m ON true"""


async def _start_attempt(
    pool: asyncpg.Pool,
    payments: Payments,
    hold_id: uuid.UUID,
    user_id: str,
    key: str,
    deadline: float,
) -> _Attempt | Reply:
    """Commit a 'pending' attempt row, or answer without charging (not this fan's hold, not
    on sale, already confirmed, expired, already declined, or another attempt of this hold
    still deciding)."""
    while True:
        async with pool.acquire() as conn, conn.transaction():
            hold = await conn.fetchrow(_LOCK_HOLD, hold_id, user_id)
            if hold is None:
                return await _not_the_callers(conn, hold_id)
            step = before_charge(hold_state(hold["status"], hold["past"]), hold["not_yet"])
            if step is BeforeCharge.NOT_FOUND:
                return hold_not_found()
            if step is BeforeCharge.NOT_ON_SALE:  # the on-sale was moved later since
                problem = not_on_sale(hold["on_sale_at"])
                return problem.status, problem.to_dict()
            if step is BeforeCharge.BOOKED:
                return await booking_reply(conn, hold_id)
            chargeable = step is BeforeCharge.CHARGE
            attempt_id = uuid.uuid4()
            found = await conn.fetchrow(
                _START_ATTEMPT,
                hold_id,
                key,
                attempt_id,
                hold["amount_cents"],
                hold["currency"],
                chargeable,
            )
        if found["mine_status"] == STORED_STATUS[AttemptState.DECLINED]:
            return payment_failed(found["mine_failure_code"])
        if not chargeable:
            return hold_expired()
        mine = found["mine_id"]
        if not found["other_ids"]:
            if mine is not None:
                # A redelivered command: Stripe may already have this attempt's intent.
                reply = await _recover(
                    pool, payments, mine, found["mine_created_at"], abandon=False
                )
                if reply is not None:
                    return reply
            return _Attempt(
                mine if mine is not None else attempt_id,
                key,
                hold["amount_cents"],
                hold["currency"].strip(),
                found["ticket_ids"],
                fresh=found["inserted"],
            )
        others = list(zip(found["other_ids"], found["other_created_at"], strict=True))
        stale = [
            (attempt, created)
            for attempt, created in others
            if (found["now"] - created).total_seconds() > ATTEMPT_LEASE_SECONDS
        ]
        for attempt, created in stale:
            reply = await _recover(pool, payments, attempt, created, abandon=True)
            if reply is not None:
                return reply
        if len(stale) < len(others):
            if time.monotonic() > deadline:
                return payment_in_progress()
            await asyncio.sleep(0.05)


async def _not_the_callers(conn: asyncpg.Connection, hold_id: uuid.UUID) -> Reply:
    """Why a confirm found no hold of the caller's to lock (read without locking: the caller
    may not wait on another fan's hold)."""
    status = await conn.fetchval("SELECT status FROM holds WHERE id = $1", hold_id)
    if status is None or status == "released":
        return hold_not_found()
    return _problem(403, "not_your_hold", "This hold belongs to someone else.")


async def _recover(
    pool: asyncpg.Pool,
    payments: Payments,
    attempt_id: uuid.UUID,
    created: datetime | None,
    *,
    abandon: bool,
) -> Reply | None:
    """Settle an attempt left 'pending' from what Stripe knows of it; None when Stripe never
    saw it succeed (an abandoned one is then marked failed so a new attempt may start)."""
    since = created.timestamp() - CLOCK_MARGIN_SECONDS if created is not None else None
    found = await payments.find_attempt(str(attempt_id), since=since)
    if found is not None and found.status == "succeeded":
        ticket_ids = [int(t) for t in found.metadata.get("ticket_ids", "").split(",") if t]
        async with pool.acquire() as conn:
            settled = await settle_success(conn, attempt_id, found.payment_intent_id, ticket_ids)
        hold_id = uuid.UUID(found.metadata["hold_id"])
        return await _reply_for(pool, payments, hold_id, settled)
    if abandon:
        await _record_failure(
            pool, attempt_id, "abandoned", found.payment_intent_id if found else None
        )
    return None


async def _record_failure(
    pool: asyncpg.Pool, attempt_id: uuid.UUID, code: str, intent_id: str | None
) -> None:
    await pool.execute(
        "UPDATE payments SET status = 'failed', failure_code = $2,"
        " payment_intent_id = COALESCE($3, payment_intent_id), updated_at = now()"
        " WHERE id = $1 AND status = 'pending'",
        attempt_id,
        code,
        intent_id,
    )


async def _reply_for(
    pool: asyncpg.Pool, payments: Payments, hold_id: uuid.UUID, settled: Settled
) -> Reply:
    if settled.booking is not None:
        return 201, settled.booking
    if settled.refund_due:
        await complete_due_refunds(pool, payments)
    if settled.booking_id is None:
        return hold_expired()
    async with pool.acquire() as conn:
        status, body = await booking_reply(conn, hold_id)
    if body.get("status") == "refunded":
        return _problem(
            409,
            "hold_expired",
            "The hold expired and its seats were taken before the payment completed;"
            " the payment is refunded.",
        )
    return status, body


async def settle_success(
    conn: asyncpg.Connection, attempt_id: uuid.UUID, intent_id: str, ticket_ids: list[int]
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
    conn: asyncpg.Connection, attempt_id: uuid.UUID, intent_id: str, ticket_ids: list[int]
) -> Settled:
    """settle_success's every case, each read made after the locks it depends on."""
    async with conn.transaction():
        payment = await conn.fetchrow("SELECT * FROM payments WHERE id = $1 FOR UPDATE", attempt_id)
        if payment is None:
            raise LookupError(f"unknown payment attempt {attempt_id}")
        hold_id = payment["hold_id"]
        hold = await conn.fetchrow("SELECT * FROM holds WHERE id = $1 FOR UPDATE", hold_id)
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
    conn: asyncpg.Connection,
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
    await record_event_changed(conn, hold["event_id"], "availability")


async def complete_due_refunds(pool: asyncpg.Pool, payments: Payments) -> int:
    """Refund every payment settled as owing one, each once. Safe to run anywhere, any
    time, several at once (a webhook, a confirm and every worker's sweep call it): each
    payment is refunded under its own advisory lock, its status read again under it, so two
    runs never both ask Stripe (whose idempotency key we send but do not rely on:
    localstripe ignores it). A crash before the status update only means the next run asks
    Stripe again, with the same key."""
    due = await pool.fetch(f"SELECT id FROM payments WHERE {REFUND_DUE} ORDER BY created_at")
    refunded = 0
    for row in due:
        async with pool.acquire() as conn:
            lock = f"refund:{row['id']}"
            pid = conn.get_server_pid()
            _MAY_HOLD_SESSION_LOCKS.add(pid)  # until unlocked: see _reset_payment_connection
            if not await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", lock
            ):
                _MAY_HOLD_SESSION_LOCKS.discard(pid)
                continue  # another run is refunding it right now
            try:
                payment = await conn.fetchrow(
                    f"SELECT payment_intent_id, failure_code FROM payments"
                    f" WHERE id = $1 AND {REFUND_DUE}",
                    row["id"],
                )
                if payment is None:
                    continue  # refunded by another run since the list was read
                key = f"refund:{row['id']}"
                await payments.refund(payment["payment_intent_id"], idempotency_key=key)
                await conn.execute(
                    "UPDATE payments SET status = 'refunded', updated_at = now() WHERE id = $1",
                    row["id"],
                )
                REFUNDS.labels(payment["failure_code"]).inc()
                refunded += 1
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", lock)
                _MAY_HOLD_SESSION_LOCKS.discard(pid)
    return refunded


async def booking_reply(conn: asyncpg.Connection, hold_id: uuid.UUID) -> Reply:
    booking = await conn.fetchrow("SELECT * FROM bookings WHERE hold_id = $1", hold_id)
    if booking is None:
        return hold_not_found()
    return 201, await booking_body(conn, booking)


async def booking_body(conn: asyncpg.Connection, booking: asyncpg.Record) -> dict[str, Any]:
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
