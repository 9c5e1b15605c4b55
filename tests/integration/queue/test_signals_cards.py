"""The cards signal at confirm, against real PostgreSQL and localstripe: the booking
worker records the card fingerprint Stripe reports for each account that paid, per event
(two accounts paying with one card are a cluster), and a confirm whose record fails still
books (counted in a metric)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from booking_worker.attempt_locks import AttemptLocks
from booking_worker.confirm import CARD_SIGNALS_FAILED, confirm_hold
from tests.integration.payments.support import confirm_command, hold_seats, seed_event
from tests.support import eventually
from ticketing.config import Settings
from ticketing.payments import Payments
from waitingroom.queue.signals_cards import CardClusters

# What localstripe reports for pm_card_visa's card (the same for every use of it).
VISA = "79758cf4654d6cc6"


@pytest.fixture
async def paying(payment_settings: Settings) -> AsyncIterator[tuple[Payments, AttemptLocks]]:
    payments = Payments(payment_settings)
    locks = AttemptLocks(payment_settings.database_url)
    yield payments, locks
    await locks.close()
    await payments.close()


async def cards_of(pool: asyncpg.Pool, event_id: int) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT fingerprint, user_id FROM queue_signal_cards WHERE event_id = $1 ORDER BY 2",
        event_id,
    )
    return [(r["fingerprint"], r["user_id"]) for r in rows]


async def test_accounts_paying_with_one_card_are_a_cluster(pool, paying) -> None:
    payments, locks = paying
    async with pool.acquire() as conn:
        event_id = await seed_event(conn, seats=6)
        holds = [
            await hold_seats(conn, event_id, f"card-{n}-{uuid.uuid4().hex[:6]}") for n in (1, 2)
        ]
        declined = await hold_seats(conn, event_id, "declined-" + uuid.uuid4().hex[:6])
    for held in holds:
        status, body = await confirm_hold(
            pool, payments, locks, confirm_command(held, "pm_card_visa")
        )
        assert status == 201, body
    status, _ = await confirm_hold(
        pool, payments, locks, confirm_command(declined, "pm_card_chargeCustomerFail")
    )
    assert status == 402  # a declined card paid nothing: no signal

    expected = sorted((VISA, held.user_id) for held in holds)
    await eventually(lambda: cards_of(pool, event_id), lambda r: r == expected, 5, "cards")
    clusters = await CardClusters(pool).read(event_id)
    assert clusters == {VISA: [held.user_id for held in holds]}


async def test_a_card_that_cannot_be_recorded_never_fails_the_confirm(pool, paying) -> None:
    payments, locks = paying
    async with pool.acquire() as conn:
        event_id = await seed_event(conn)
        held = await hold_seats(conn, event_id, "lost-card-" + uuid.uuid4().hex[:6])
    failed_before = CARD_SIGNALS_FAILED._value.get()
    await pool.execute("ALTER TABLE queue_signal_cards RENAME TO queue_signal_cards_away")
    try:
        status, body = await confirm_hold(
            pool, payments, locks, confirm_command(held, "pm_card_visa")
        )
        assert (status, body["status"]) == (201, "confirmed"), body

        async def failed() -> float:
            return CARD_SIGNALS_FAILED._value.get()

        await eventually(failed, lambda n: n == failed_before + 1, 5, "the failure counted")
    finally:
        await pool.execute("ALTER TABLE queue_signal_cards_away RENAME TO queue_signal_cards")
    assert await cards_of(pool, event_id) == []
