"""A confirm's payment attempts, before and after the charge: record a 'pending' attempt
under the hold's lock (or answer without charging), recover one an earlier try left
'pending' from what Stripe knows of it, record a decline, and answer once settled.

One idempotency key per attempt, derived from the command's request id: a redelivered
command reuses its attempt, a fan's retry after a declined card is a new attempt; another
attempt of the same hold still deciding is waited for, and abandoned once its lease ends.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from booking_worker.context import Connection, Reply
from booking_worker.payment_replies import (
    hold_expired,
    hold_not_found,
    payment_failed,
    payment_in_progress,
    problem_reply,
)
from booking_worker.refunds import complete_due_refunds
from booking_worker.reserve import not_on_sale
from booking_worker.settle import Settled, booking_reply, settle_success
from ticketing.domain.booking_states import (
    STORED_STATUS,
    AttemptState,
    BeforeCharge,
    before_charge,
    hold_state,
)
from ticketing.payments import Payments

# An attempt younger than this may still be waiting on Stripe in another worker.
ATTEMPT_LEASE_SECONDS = 30.0
# How far Stripe's clock and ours may disagree when looking for an attempt's intent.
CLOCK_MARGIN_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Attempt:
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


async def start_attempt(
    pool: asyncpg.Pool,
    payments: Payments,
    hold_id: uuid.UUID,
    user_id: str,
    key: str,
    deadline: float,
) -> Attempt | Reply:
    """Commit a 'pending' attempt row, or answer without charging (not this fan's hold, not
    on sale, already confirmed, expired, already declined, or another attempt of this hold
    still deciding)."""
    while True:
        async with pool.acquire() as conn, conn.transaction():
            hold = await conn.fetchrow(_LOCK_HOLD, hold_id, user_id)
            if hold is None:
                return await _not_the_callers(conn, hold_id)
            step = before_charge(hold_state(hold["status"], hold["past"]), hold["not_yet"])
            if step in _NO_CHARGE:
                return await _no_charge(conn, step, hold, hold_id)
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
            found = _one_row(found)  # the statement always yields one: FROM (SELECT)
        if found["mine_status"] == STORED_STATUS[AttemptState.DECLINED]:
            return payment_failed(found["mine_failure_code"])
        if not chargeable:
            return hold_expired()
        if not found["other_ids"]:
            return await _this_attempt(pool, payments, hold, found, key, attempt_id)
        reply, deciding = await _recover_stale(pool, payments, found)
        if reply is not None:
            return reply
        if deciding:
            if time.monotonic() > deadline:
                return payment_in_progress()
            await asyncio.sleep(0.05)


def _one_row(row: asyncpg.Record | None) -> asyncpg.Record:
    if row is None:
        raise LookupError("a statement that yields one row yielded none")
    return row


async def _this_attempt(
    pool: asyncpg.Pool,
    payments: Payments,
    hold: asyncpg.Record,
    found: asyncpg.Record,
    key: str,
    attempt_id: uuid.UUID,
) -> Attempt | Reply:
    """The attempt to charge, the only one of the hold still deciding: this key's earlier
    one if there is one (settled instead if Stripe already took the payment), else the
    one just recorded."""
    mine = found["mine_id"]
    if mine is not None:
        # A redelivered command: Stripe may already have this attempt's intent.
        reply = await _recover(pool, payments, mine, found["mine_created_at"], abandon=False)
        if reply is not None:
            return reply
    return Attempt(
        mine if mine is not None else attempt_id,
        key,
        hold["amount_cents"],
        hold["currency"].strip(),
        found["ticket_ids"],
        fresh=found["inserted"],
    )


async def _recover_stale(
    pool: asyncpg.Pool, payments: Payments, found: asyncpg.Record
) -> tuple[Reply | None, bool]:
    """Settle from Stripe, or abandon, the hold's other attempts whose lease ran out:
    (a reply if one of them booked, whether any other is still within its lease)."""
    others = list(zip(found["other_ids"], found["other_created_at"], strict=True))
    stale = [
        (attempt, created)
        for attempt, created in others
        if (found["now"] - created).total_seconds() > ATTEMPT_LEASE_SECONDS
    ]
    for attempt, created in stale:
        reply = await _recover(pool, payments, attempt, created, abandon=True)
        if reply is not None:
            return reply, False
    return None, len(stale) < len(others)


_NO_CHARGE = frozenset({BeforeCharge.NOT_FOUND, BeforeCharge.NOT_ON_SALE, BeforeCharge.BOOKED})


async def _no_charge(
    conn: Connection, step: BeforeCharge, hold: asyncpg.Record, hold_id: uuid.UUID
) -> Reply:
    """The answer to a confirm of a hold that is gone, not on sale, or already booked."""
    if step is BeforeCharge.NOT_FOUND:
        return hold_not_found()
    if step is BeforeCharge.NOT_ON_SALE:  # the on-sale was moved later since
        problem = not_on_sale(hold["on_sale_at"])
        return problem.status, problem.to_dict()
    return await booking_reply(conn, hold_id)


async def _not_the_callers(conn: Connection, hold_id: uuid.UUID) -> Reply:
    """Why a confirm found no hold of the caller's to lock (read without locking: the caller
    may not wait on another fan's hold)."""
    status = await conn.fetchval("SELECT status FROM holds WHERE id = $1", hold_id)
    if status is None or status == "released":
        return hold_not_found()
    return problem_reply(403, "not_your_hold", "This hold belongs to someone else.")


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
        return await reply_for(pool, payments, hold_id, settled)
    if abandon:
        await record_failure(
            pool, attempt_id, "abandoned", found.payment_intent_id if found else None
        )
    return None


async def record_failure(
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


async def reply_for(
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
    if (body or {}).get("status") == "refunded":
        return problem_reply(
            409,
            "hold_expired",
            "The hold expired and its seats were taken before the payment completed;"
            " the payment is refunded.",
        )
    return status, body
