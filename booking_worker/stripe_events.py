"""The STRIPE_EVENT command: a verified webhook event, applied once.

The event id is inserted into ``stripe_webhook_events`` in the same transaction as its
effect, so a replayed delivery finds the row and changes nothing. The effect itself is
idempotent too (:func:`booking_worker.confirm.settle_success` settles an attempt once), so
an event that reaches us after the synchronous confirm already booked is harmless.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import asyncpg

from booking_worker.context import Connection, Context, Reply
from booking_worker.metrics import STRIPE_EVENTS
from booking_worker.payment_resources import payment_resources
from booking_worker.refunds import complete_due_refunds
from booking_worker.settle import settle_success
from ticketing.domain.booking_states import STORED_STATUS, AttemptState
from ticketing.messages import StripeEvent
from ticketing.payments import Payments, PaymentUnavailable
from ticketing.problems import Problem

log = logging.getLogger(__name__)


async def handle_stripe_event(ctx: Context, conn: Connection, command: StripeEvent) -> Reply:
    """STRIPE_EVENT from a partition queue's batch (a front door older than the payments
    stage); ``conn`` is not used, see :func:`stripe_event_payment`."""
    return await stripe_event_payment(ctx, command)


async def stripe_event_payment(ctx: Context, command: StripeEvent) -> Reply:
    """Works on its own connection: a refund owed must be committed before Stripe is asked
    for it, which a batch transaction would not allow. (The event is a dict with a str id:
    ticketing.messages.StripeEvent checked it.)"""
    pool, payments = await payment_resources(ctx)
    try:
        return await apply_stripe_event(pool, payments, dict(command.event))
    except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError):
        # Not stored: Stripe delivers the webhook again and we apply it then.
        problem = Problem(503, "backend_unavailable", "Try the delivery again.")
        return 503, problem.to_dict()


async def apply_stripe_event(
    pool: asyncpg.Pool, payments: Payments, event: dict[str, Any]
) -> Reply:
    refund_due = False
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            "INSERT INTO stripe_webhook_events (id, type, payload) VALUES ($1, $2, $3::jsonb)"
            " ON CONFLICT (id) DO NOTHING RETURNING true",
            event["id"],
            str(event.get("type")),
            json.dumps(event),
        )
        if not inserted:
            log.info("stripe event replayed, ignored event_id=%s", event["id"])
            STRIPE_EVENTS.labels(str(event.get("type")), "duplicate").inc()
            return 200, {"received": True, "duplicate": True}
        refund_due = await _apply(conn, event)
    STRIPE_EVENTS.labels(str(event.get("type")), "applied").inc()
    if refund_due:
        try:
            await complete_due_refunds(pool, payments)
        except PaymentUnavailable as exc:
            # The refund owed committed with the event; every worker's sweeper makes it
            # once Stripe answers. Asking Stripe to deliver again would add nothing.
            log.warning("refund deferred to the sweeper event_id=%s: %s", event["id"], exc)
    return 200, {"received": True, "duplicate": False}


async def _apply(conn: Connection, event: dict[str, Any]) -> bool:
    """Apply one event inside the dedupe transaction; True when a refund is now owed."""
    kind = event.get("type")
    intent = (event.get("data") or {}).get("object") or {}
    metadata = intent.get("metadata") or {}
    attempt_id = _uuid(metadata.get("attempt_id"))
    if kind not in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        return False
    known = attempt_id is not None and await conn.fetchval(
        "SELECT true FROM payments WHERE id = $1", attempt_id
    )
    if attempt_id is None or not known:
        log.warning("stripe event for no attempt of ours event_id=%s", event["id"])
        return False
    if kind == "payment_intent.succeeded":
        ticket_ids = [int(t) for t in str(metadata.get("ticket_ids", "")).split(",") if t]
        settled = await settle_success(conn, attempt_id, intent["id"], ticket_ids)
        return settled.refund_due
    error = intent.get("last_payment_error") or {}
    await conn.execute(
        "UPDATE payments SET status = $4, failure_code = $2,"
        " payment_intent_id = COALESCE(payment_intent_id, $3), updated_at = now()"
        " WHERE id = $1 AND status = 'pending'",
        attempt_id,
        error.get("code") or "payment_failed",
        intent.get("id"),
        STORED_STATUS[AttemptState.DECLINED],
    )
    return False


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
