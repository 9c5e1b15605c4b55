"""Confirming a hold: record a payment attempt, charge it, then settle it in one transaction.

The Stripe call never runs inside a transaction: seat and hold locks are held only for the
short write before it (the attempt row, committed 'pending') and the short write after it
(booking, tickets, payment, hold, outbox together). A crash between Stripe's success and
our write leaves the attempt 'pending' with a PaymentIntent whose metadata names the hold,
the attempt and the seats; the ``payment_intent.succeeded`` webhook or the next confirm of
the hold (which looks the attempt up in Stripe) settles it, so no payment is ever lost.
The attempt's bookkeeping is booking_worker.attempts; settling it, booking_worker.settle.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import asyncpg
from prometheus_client import Counter

from booking_worker.attempt_locks import AttemptLocks
from booking_worker.attempts import Attempt, record_failure, reply_for, start_attempt
from booking_worker.context import Connection, Context, Reply
from booking_worker.metrics import CONFIRMS, PAYMENTS
from booking_worker.payment_replies import (
    hold_not_found,
    payment_failed,
    payment_in_progress,
    payment_unavailable,
    problem_reply,
)
from booking_worker.payment_resources import close_payment_resources, payment_resources
from booking_worker.refunds import complete_due_refunds
from booking_worker.settle import Settled, settle_success
from ticketing.messages import Confirm
from ticketing.payments import (
    PaymentDeclined,
    Payments,
    PaymentUnavailable,
    intent_metadata,
)

log = logging.getLogger(__name__)

# Importable from here as before (booking_worker.worker, tests, bench).
__all__ = [
    "Settled",
    "close_payment_resources",
    "complete_due_refunds",
    "confirm_hold",
    "confirm_payment",
    "handle_confirm",
    "payment_resources",
    "settle_success",
]

# How long a second confirm of the same hold waits for the first one's answer.
WAIT_FOR_OTHER_ATTEMPT_SECONDS = 3.0

# One person, one place: the card each account paid with, per event (migration 0009), read
# by the waitingroom (waitingroom/queue/signals_cards.py). Written once the payment
# settled, in the background and best effort: it never fails nor slows a confirm.
_RECORD_CARD = """
INSERT INTO queue_signal_cards (event_id, fingerprint, user_id)
SELECT h.event_id, $2, $3 FROM holds h WHERE h.id = $1
ON CONFLICT DO NOTHING
"""
CARD_SIGNALS_FAILED = Counter(
    "ticketing_booking_card_signals_failed_total",
    "Card fingerprints of confirms that could not be recorded (one person, one place).",
)
_RECORDING: set[asyncio.Task[None]] = set()


async def handle_confirm(ctx: Context, conn: Connection, command: Confirm) -> Reply:
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
        reply = problem_reply(503, "backend_unavailable", "The hold is busy; try again.")
    status, body = reply
    CONFIRMS.labels("confirmed" if status < 400 else str((body or {}).get("code"))).inc()
    return reply


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
        return problem_reply(400, "validation_error", "payment_method is required.")
    attempt_key = f"confirm:{hold_id}:{command.request_id}"

    deadline = time.monotonic() + WAIT_FOR_OTHER_ATTEMPT_SECONDS
    async with locks.hold(attempt_key, deadline) as alone:
        if not alone:
            return payment_in_progress()
        return await _confirm(
            pool, payments, hold_id, command.user_id, payment_method, attempt_key, deadline
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
        started = await start_attempt(pool, payments, hold_id, user_id, attempt_key, deadline)
        if not isinstance(started, Attempt):
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
        await record_failure(pool, started.id, outcome.code, outcome.payment_intent_id)
        log.info("payment declined hold_id=%s code=%s", hold_id, outcome.code)
        return payment_failed(outcome.code)
    async with pool.acquire() as conn:
        settled = await settle_success(
            conn, started.id, outcome.payment_intent_id, started.ticket_ids
        )
    if outcome.card_fingerprint:
        task = asyncio.create_task(_record_card(pool, hold_id, user_id, outcome.card_fingerprint))
        _RECORDING.add(task)
        task.add_done_callback(_RECORDING.discard)
    return await reply_for(pool, payments, hold_id, settled)


async def _record_card(pool: asyncpg.Pool, hold_id: uuid.UUID, user_id: str, card: str) -> None:
    try:
        async with asyncio.timeout(2):  # the pool's wait for a connection too
            await pool.execute(_RECORD_CARD, hold_id, card[:64], user_id)
    except Exception as exc:  # best effort, whatever went wrong
        CARD_SIGNALS_FAILED.inc()
        log.warning("card signal not recorded hold_id=%s: %s", hold_id, exc)
