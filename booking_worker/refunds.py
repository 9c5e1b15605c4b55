"""Making the refunds owed: payments in the "refund due" state (a late payment whose seats
were sold, a second charge of a booked hold) are refunded at Stripe, each once."""

from __future__ import annotations

import asyncpg

from booking_worker.metrics import REFUNDS
from booking_worker.payment_resources import may_hold_session_locks
from ticketing.payments import Payments

# An attempt in the "refund due" state (ticketing.domain.booking_states), as stored.
REFUND_DUE = "status = 'succeeded' AND failure_code IS NOT NULL"
# Built from that constant, never from input.
_DUE = f"SELECT id FROM payments WHERE {REFUND_DUE} ORDER BY created_at"  # noqa: S608
_STILL_DUE = f"SELECT payment_intent_id, failure_code FROM payments WHERE id = $1 AND {REFUND_DUE}"  # noqa: S608


async def complete_due_refunds(pool: asyncpg.Pool, payments: Payments) -> int:
    """Refund every payment settled as owing one, each once. Safe to run anywhere, any
    time, several at once (a webhook, a confirm and every worker's sweep call it): each
    payment is refunded under its own advisory lock, its status read again under it, so two
    runs never both ask Stripe (whose idempotency key we send but do not rely on:
    localstripe ignores it). A crash before the status update only means the next run asks
    Stripe again, with the same key."""
    due = await pool.fetch(_DUE)
    refunded = 0
    for row in due:
        async with pool.acquire() as conn:
            lock = f"refund:{row['id']}"
            pid = conn.get_server_pid()
            may_hold_session_locks.add(pid)  # until unlocked: see _reset_payment_connection
            if not await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", lock
            ):
                may_hold_session_locks.discard(pid)
                continue  # another run is refunding it right now
            try:
                payment = await conn.fetchrow(_STILL_DUE, row["id"])
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
                may_hold_session_locks.discard(pid)
    return refunded
