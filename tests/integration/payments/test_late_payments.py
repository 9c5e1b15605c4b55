"""A payment that succeeded while nobody was looking (the worker died after Stripe said
yes): a redelivered confirm settles the charge it already made; Stripe's event books it
after the hold expired while the seats are free, and refunds it when someone else took
them; and a replayed event changes nothing."""

from __future__ import annotations

import uuid

import asyncpg

from booking_worker.attempt_locks import AttemptLocks
from booking_worker.confirm import confirm_hold
from booking_worker.stripe_events import apply_stripe_event
from tests.integration.payments.localstripe import LocalStripe
from tests.integration.payments.support import (
    HeldSeats,
    confirm_command,
    expire_hold,
    hold_seats,
    payment_rows,
    ticket_states,
)
from ticketing.payments import Payments, PaymentSucceeded, intent_metadata


async def charge_then_crash(
    pool: asyncpg.Pool, payments: Payments, held: HeldSeats, request_id: str
) -> dict:
    """What a worker leaves when it dies right after Stripe said yes: a pending attempt and
    a succeeded PaymentIntent. Returns the payment_intent.succeeded event Stripe sends."""
    attempt_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO payments (id, hold_id, idempotency_key, amount_cents, currency, status)"
        " VALUES ($1, $2, $3, 5000, 'EUR', 'pending')",
        attempt_id,
        held.hold_id,
        f"confirm:{held.hold_id}:{request_id}",
    )
    metadata = intent_metadata(str(held.hold_id), str(attempt_id), held.ticket_ids)
    outcome = await payments.charge(
        idempotency_key=f"confirm:{held.hold_id}:{request_id}",
        amount_cents=5000,
        currency="EUR",
        payment_method="pm_card_visa",
        metadata=metadata,
    )
    assert isinstance(outcome, PaymentSucceeded)
    intent = {
        "id": outcome.payment_intent_id,
        "object": "payment_intent",
        "status": "succeeded",
        "metadata": metadata,
    }
    return {
        "id": "evt_" + uuid.uuid4().hex,
        "type": "payment_intent.succeeded",
        "data": {"object": intent},
    }


async def test_a_redelivered_confirm_settles_the_charge_it_already_made(
    pool: asyncpg.Pool,
    payments: Payments,
    held: HeldSeats,
    localstripe: LocalStripe,
    locks: AttemptLocks,
) -> None:
    await charge_then_crash(pool, payments, held, "req-crashed")
    status, booking = await confirm_hold(
        pool, payments, locks, confirm_command(held, "pm_card_visa", request_id="req-crashed")
    )
    assert status == 201 and booking["status"] == "confirmed"
    assert len(localstripe.intents_for_hold(held.hold_id)) == 1


async def test_late_payment_after_expiry_is_honoured_while_the_seats_are_free(
    pool: asyncpg.Pool, payments: Payments, held: HeldSeats
) -> None:
    event = await charge_then_crash(pool, payments, held, "req-late")
    async with pool.acquire() as conn:
        await expire_hold(conn, held.hold_id)
    assert await apply_stripe_event(pool, payments, event) == (
        200,
        {"received": True, "duplicate": False},
    )
    booking = await pool.fetchrow("SELECT * FROM bookings WHERE hold_id = $1", held.hold_id)
    assert booking["status"] == "confirmed"
    assert await ticket_states(pool, held.ticket_ids) == ["booked", "booked"]
    assert [p["status"] for p in await payment_rows(pool, held.hold_id)] == ["succeeded"]
    assert await pool.fetchval("SELECT status FROM holds WHERE id = $1", held.hold_id) == (
        "confirmed"
    )


async def test_late_payment_is_refunded_when_someone_else_took_the_seats(
    pool: asyncpg.Pool, payments: Payments, held: HeldSeats, localstripe: LocalStripe
) -> None:
    event = await charge_then_crash(pool, payments, held, "req-too-late")
    async with pool.acquire() as conn:
        await expire_hold(conn, held.hold_id)
        rival = await hold_seats(conn, held.event_id, "rival", count=4)
    assert set(held.ticket_ids) <= set(rival.ticket_ids)

    await apply_stripe_event(pool, payments, event)
    booking = await pool.fetchrow("SELECT * FROM bookings WHERE hold_id = $1", held.hold_id)
    assert booking["status"] == "refunded"
    [payment] = await payment_rows(pool, held.hold_id)
    assert (payment["status"], payment["failure_code"]) == ("refunded", "seats_taken")
    assert await ticket_states(pool, held.ticket_ids) == ["reserved", "reserved"]
    [intent] = localstripe.intents_for_hold(held.hold_id)
    charge = intent["latest_charge"]
    charge = charge if isinstance(charge, dict) else {}
    assert charge.get("refunded") or charge.get("amount_refunded") == 5000, intent


async def test_a_replayed_webhook_changes_nothing(
    pool: asyncpg.Pool, payments: Payments, held: HeldSeats
) -> None:
    event = await charge_then_crash(pool, payments, held, "req-replay")
    first = await apply_stripe_event(pool, payments, event)
    second = await apply_stripe_event(pool, payments, event)
    assert first[1]["duplicate"] is False and second[1]["duplicate"] is True
    assert (
        await pool.fetchval("SELECT count(*) FROM bookings WHERE hold_id = $1", held.hold_id) == 1
    )
    assert (
        await pool.fetchval("SELECT count(*) FROM stripe_webhook_events WHERE id = $1", event["id"])
        == 1
    )
