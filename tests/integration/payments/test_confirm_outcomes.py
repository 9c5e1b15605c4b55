"""What a confirm answers, calling the handler directly against real Postgres and
localstripe: a declined card is 402 and keeps the hold, and a retry with another card
books; someone else's hold is 403, an unknown one 404, and an expired one 409 with nothing
charged."""

from __future__ import annotations

import uuid

import asyncpg

from booking_worker.attempt_locks import AttemptLocks
from booking_worker.confirm import confirm_hold
from tests.integration.payments.localstripe import LocalStripe
from tests.integration.payments.support import (
    HeldSeats,
    confirm_command,
    expire_hold,
    payment_rows,
    ticket_states,
)
from ticketing.payments import Payments


async def test_a_declined_card_answers_402_keeps_the_hold_and_a_retry_books(
    pool: asyncpg.Pool,
    payments: Payments,
    held: HeldSeats,
    localstripe: LocalStripe,
    locks: AttemptLocks,
) -> None:
    status, body = await confirm_hold(
        pool, payments, locks, confirm_command(held, "pm_card_chargeCustomerFail")
    )
    assert (status, body["code"]) == (402, "payment_failed")
    assert await ticket_states(pool, held.ticket_ids) == ["reserved", "reserved"]
    assert await pool.fetchval("SELECT status FROM holds WHERE id = $1", held.hold_id) == "held"

    visa = confirm_command(held, "pm_card_visa")
    status, booking = await confirm_hold(pool, payments, locks, visa)
    assert status == 201, booking
    assert booking["status"] == "confirmed"
    assert [t["id"] for t in booking["tickets"]] == held.ticket_ids
    assert booking["amount_cents"] == 5000 and booking["currency"] == "EUR"
    assert await ticket_states(pool, held.ticket_ids) == ["booked", "booked"]
    attempts = await payment_rows(pool, held.hold_id)
    assert [a["status"] for a in attempts] == ["failed", "succeeded"]
    assert len({a["idempotency_key"] for a in attempts}) == 2
    assert attempts[1]["payment_intent_id"] == booking["payment_intent_id"]
    announced = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND payload->>'reason' ="
        " 'availability'",
        str(held.event_id),
    )
    assert announced == 1


async def test_someone_elses_hold_is_403_and_an_unknown_one_404(
    pool: asyncpg.Pool, payments: Payments, held: HeldSeats, locks: AttemptLocks
) -> None:
    status, body = await confirm_hold(
        pool, payments, locks, confirm_command(held, "pm_card_visa", user_id="mallory")
    )
    assert (status, body["code"]) == (403, "not_your_hold")
    status, body = await confirm_hold(
        pool, payments, locks, confirm_command(held, "pm_card_visa", hold_id=str(uuid.uuid4()))
    )
    assert (status, body["code"]) == (404, "hold_not_found")


async def test_an_expired_hold_is_409_and_nothing_is_charged(
    pool: asyncpg.Pool,
    payments: Payments,
    held: HeldSeats,
    localstripe: LocalStripe,
    locks: AttemptLocks,
) -> None:
    async with pool.acquire() as conn:
        await expire_hold(conn, held.hold_id)
    status, body = await confirm_hold(pool, payments, locks, confirm_command(held, "pm_card_visa"))
    assert (status, body["code"]) == (409, "hold_expired")
    assert localstripe.intents_for_hold(held.hold_id) == []
