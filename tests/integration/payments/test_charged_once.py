"""A hold is charged once however its confirm arrives, calling the handler directly
against real Postgres and localstripe: twice in a row, three at once, and two copies of one
confirm (one Idempotency-Key) racing in two workers or side by side in one."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from booking_worker.attempt_locks import AttemptLocks
from booking_worker.confirm import confirm_hold
from tests.integration.payments.localstripe import LocalStripe
from tests.integration.payments.support import HeldSeats, confirm_command
from ticketing.config import Settings
from ticketing.payments import Payments


async def test_confirming_twice_returns_the_same_booking_and_charges_once(
    pool: asyncpg.Pool,
    payments: Payments,
    held: HeldSeats,
    localstripe: LocalStripe,
    locks: AttemptLocks,
) -> None:
    first = await confirm_hold(pool, payments, locks, confirm_command(held, "pm_card_visa"))
    again = await confirm_hold(pool, payments, locks, confirm_command(held, "pm_card_visa"))
    assert first[0] == again[0] == 201
    assert first[1] == again[1]
    assert len(localstripe.intents_for_hold(held.hold_id)) == 1


async def test_two_confirms_at_once_charge_once(
    pool: asyncpg.Pool,
    payments: Payments,
    held: HeldSeats,
    localstripe: LocalStripe,
    locks: AttemptLocks,
) -> None:
    replies = await asyncio.gather(
        *(
            confirm_hold(pool, payments, locks, confirm_command(held, "pm_card_visa"))
            for _ in range(3)
        )
    )
    assert [status for status, _ in replies] == [201, 201, 201]
    assert len({body["booking_id"] for _, body in replies}) == 1
    assert len(localstripe.intents_for_hold(held.hold_id)) == 1


class SlowToStripe(Payments):
    """The real localstripe, reached after a delay: a charge still on its way when a copy
    of the same confirm arrives."""

    async def charge(self, **kwargs: Any):
        await asyncio.sleep(0.5)
        return await super().charge(**kwargs)


async def test_two_copies_of_one_confirm_at_once_charge_once(
    pool: asyncpg.Pool, payment_settings: Settings, held: HeldSeats, localstripe: LocalStripe
) -> None:
    """A client retry racing its original (same Idempotency-Key, so the same attempt) in two
    workers: both found the attempt pending with no intent yet and both charged, since
    localstripe, like our design, does not rely on Stripe's idempotency keys."""
    slow = SlowToStripe(payment_settings)
    workers = [AttemptLocks(payment_settings.database_url) for _ in range(2)]
    try:
        command = confirm_command(held, "pm_card_visa", request_id="same-" + uuid.uuid4().hex)
        replies = await asyncio.gather(
            *(confirm_hold(pool, slow, locks, command) for locks in workers)
        )
    finally:
        await slow.close()
        for locks in workers:
            await locks.close()
    assert [status for status, _ in replies] == [201, 201], replies
    assert replies[0][1]["booking_id"] == replies[1][1]["booking_id"]
    assert len(localstripe.intents_for_hold(held.hold_id)) == 1


async def test_two_copies_of_one_confirm_in_one_worker_charge_once(
    pool: asyncpg.Pool,
    payment_settings: Settings,
    held: HeldSeats,
    localstripe: LocalStripe,
    locks: AttemptLocks,
) -> None:
    """The same race inside one worker, whose payments run side by side: its attempt locks
    share one database session, where advisory locks are re-entrant, so the process must
    tell its own attempts apart itself."""
    slow = SlowToStripe(payment_settings)
    try:
        command = confirm_command(held, "pm_card_visa", request_id="same-" + uuid.uuid4().hex)
        replies = await asyncio.gather(
            *(confirm_hold(pool, slow, locks, command) for _ in range(2))
        )
    finally:
        await slow.close()
    assert [status for status, _ in replies] == [201, 201], replies
    assert replies[0][1]["booking_id"] == replies[1][1]["booking_id"]
    assert len(localstripe.intents_for_hold(held.hold_id)) == 1
