"""Confirm while Stripe is unreachable, end to end: HTTP (the waitingroom app) -> RabbitMQ
-> a real booking worker -> Postgres, and a real localstripe behind a network the test
breaks (refused, silent, or answering too late). The fan gets a prompt, clear 503, the
hold and every payment attempt are kept, and once Stripe is back a retry books once and
charges once; a refund owed meanwhile is made when Stripe returns."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.integration.booking.support import call, ticket_ids
from tests.integration.payments.localstripe import LocalStripe, StripeLink
from tests.integration.payments.steps import (
    PRICE,
    Answer,
    a_fan,
    a_hold,
    confirm,
    pay_behind_our_back,
    post_webhook,
    reserve,
)
from tests.integration.payments.support import (
    WEBHOOK_SECRET,
    booking_stack,
    expire_hold,
    metric,
    settled_intents,
    ticket_rows,
)
from tests.support import eventually, settings_with
from ticketing.config import Settings
from ticketing.payments import Payments

pytestmark = pytest.mark.usefixtures("stripe_back")

# The front door's wait; the worker gives up on Stripe sooner (ticketing.payments), so
# the fan hears the worker's own 503 rather than the front door's.
RPC_TIMEOUT = 4.0
# An answer that waited out no timeout (the worker gives up on Stripe after 3 s here).
PROMPTLY = 1.5


@pytest.fixture(scope="module")
def outage_settings(booking_settings: Settings, link: StripeLink, e2e_amqp: str) -> Settings:
    return settings_with(
        booking_settings,
        amqp_url=e2e_amqp,
        stripe_api_base=link.url,
        stripe_webhook_secret=WEBHOOK_SECRET,
        booking_rpc_timeout_seconds=RPC_TIMEOUT,
        sweep_interval_seconds=0.2,
    )


@pytest.fixture(scope="module")
async def api(outage_settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[TestClient]:
    async with booking_stack(outage_settings, pool) as client:
        yield client


@pytest.fixture(scope="module")
async def stripe_direct(
    outage_settings: Settings, own_localstripe: LocalStripe
) -> AsyncIterator[Payments]:
    """A Stripe client that bypasses the broken link (Stripe's own view of things)."""
    client = Payments(settings_with(outage_settings, stripe_api_base=own_localstripe.url))
    yield client
    await client.close()


def assert_unavailable(reply: Answer, within: float) -> None:
    status, body, took, headers = reply
    assert (status, body["code"]) == (503, "backend_unavailable"), body
    assert headers["Content-Type"].startswith("application/problem+json")
    assert int(headers["Retry-After"]) > 0
    assert took < within, f"took {took:.2f}s"


async def still_held(
    api: TestClient, pool: asyncpg.Pool, fan: dict, hold: dict[str, Any], seats: list[int]
) -> None:
    """What the fan and the database show of a hold nobody paid for yet."""
    for seat in seats:
        status, ticket, _ = await call(api, "GET", f"/booking/{seat}", fan)
        assert status == 200 and ticket["status"] == "reserved", ticket
        assert ticket["hold_id"] == hold["hold_id"]
    assert await ticket_rows(pool, seats) == [("reserved", None)] * len(seats)
    assert (
        await pool.fetchval("SELECT status FROM holds WHERE id = $1", uuid.UUID(hold["hold_id"]))
        == "held"
    )
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM bookings WHERE hold_id = $1", uuid.UUID(hold["hold_id"])
        )
        == 0
    )


async def attempts(pool: asyncpg.Pool, hold: dict[str, Any]) -> list[str]:
    rows = await pool.fetch(
        "SELECT status FROM payments WHERE hold_id = $1 ORDER BY created_at",
        uuid.UUID(hold["hold_id"]),
    )
    return [r["status"] for r in rows]


def stripe_errors() -> float:
    return metric("booking_payments_total", result="error")


async def test_stripe_down_is_a_fast_503_the_hold_stays_and_a_retry_books_once(
    api: TestClient,
    outage_settings: Settings,
    pool: asyncpg.Pool,
    link: StripeLink,
    own_localstripe: LocalStripe,
) -> None:
    me, hold, seats, _ = await a_hold(api, pool, outage_settings)
    errors = stripe_errors()
    await link.set("down")

    # The first try, then the fan's retry while Stripe is still away: both answered at once.
    for _ in range(2):
        assert_unavailable(await confirm(api, me, hold["hold_id"], key="pay"), PROMPTLY)
    await still_held(api, pool, me, hold, seats)
    assert await settled_intents(own_localstripe, hold["hold_id"]) == []
    assert stripe_errors() - errors >= 1

    await link.set("up")
    status, booking, *_ = await confirm(api, me, hold["hold_id"], key="pay")
    assert status == 201 and booking["status"] == "confirmed", booking
    assert await ticket_rows(pool, seats) == [("booked", uuid.UUID(booking["booking_id"]))] * 2
    [intent] = await settled_intents(own_localstripe, hold["hold_id"])
    assert (intent["id"], intent["amount"]) == (booking["payment_intent_id"], 2 * PRICE)
    assert await attempts(pool, hold) == ["succeeded"]
    # Asking again, with another key or none, is the same booking and no new charge.
    for key in ("pay-again", None):
        status, again, *_ = await confirm(api, me, hold["hold_id"], key=key)
        assert (status, again) == (201, booking)
    assert len(await asyncio.to_thread(own_localstripe.intents_for_hold, hold["hold_id"])) == 1


async def test_after_a_refused_connection_a_new_key_need_not_wait(
    api: TestClient,
    outage_settings: Settings,
    pool: asyncpg.Pool,
    link: StripeLink,
    own_localstripe: LocalStripe,
) -> None:
    """Stripe never received the refused attempt, so nothing of it can be in progress: a
    fan who retries without the first Idempotency-Key books at once."""
    me, hold, _, _ = await a_hold(api, pool, outage_settings, seats=1)
    await link.set("down")
    assert_unavailable(await confirm(api, me, hold["hold_id"], key="first"), PROMPTLY)
    await link.set("up")
    status, booking, *_ = await confirm(api, me, hold["hold_id"])
    assert status == 201, booking
    assert len(await settled_intents(own_localstripe, hold["hold_id"])) == 1
    assert await attempts(pool, hold) == ["succeeded"]


async def test_a_silent_stripe_costs_a_bounded_wait_and_not_the_worker(
    api: TestClient,
    outage_settings: Settings,
    pool: asyncpg.Pool,
    link: StripeLink,
    own_localstripe: LocalStripe,
) -> None:
    """Stripe accepts the connection and never answers (packets swallowed): the worker
    gives up before the front door does, so the fan hears its 503, and it is free for
    other fans' commands at once. Whether Stripe acted is unknown, so another key waits
    for this attempt; the same key finds Stripe never charged, and charges once."""
    me, hold, seats, event_id = await a_hold(api, pool, outage_settings)
    await link.set("silent")
    assert_unavailable(await confirm(api, me, hold["hold_id"], key="pay"), RPC_TIMEOUT)
    _, someone = a_fan(outage_settings)
    started = time.monotonic()
    other = await reserve(api, someone, event_id, (await ticket_ids(pool, event_id))[2:3])
    assert other["status"] == "held" and time.monotonic() - started < PROMPTLY
    await still_held(api, pool, me, hold, seats)
    assert await attempts(pool, hold) == ["pending"]

    await link.set("up")
    status, problem, *_ = await confirm(api, me, hold["hold_id"], key="other-key")
    assert (status, problem["code"]) == (409, "payment_in_progress"), problem
    status, booking, *_ = await confirm(api, me, hold["hold_id"], key="pay")
    assert status == 201, booking
    assert len(await settled_intents(own_localstripe, hold["hold_id"])) == 1
    assert await attempts(pool, hold) == ["succeeded"]


async def test_a_charge_whose_answer_was_lost_is_booked_not_charged_again(
    api: TestClient,
    outage_settings: Settings,
    pool: asyncpg.Pool,
    link: StripeLink,
    own_localstripe: LocalStripe,
) -> None:
    """Stripe charged the card but its answer came after the worker stopped listening: the
    fan got a 503; the retry with the same key finds the charge in Stripe and books it."""
    me, hold, seats, _ = await a_hold(api, pool, outage_settings)
    await link.set("late", delay=2 * RPC_TIMEOUT)
    assert_unavailable(await confirm(api, me, hold["hold_id"], key="pay"), RPC_TIMEOUT)
    [charged] = await settled_intents(own_localstripe, hold["hold_id"])
    await still_held(api, pool, me, hold, seats)

    await link.set("up")
    status, booking, *_ = await confirm(api, me, hold["hold_id"], key="pay")
    assert status == 201, booking
    assert booking["payment_intent_id"] == charged["id"]
    assert await ticket_rows(pool, seats) == [("booked", uuid.UUID(booking["booking_id"]))] * 2
    assert len(await asyncio.to_thread(own_localstripe.intents_for_hold, hold["hold_id"])) == 1
    assert await attempts(pool, hold) == ["succeeded"]


async def test_a_refund_owed_while_stripe_is_down_is_made_when_it_returns(
    api: TestClient,
    outage_settings: Settings,
    pool: asyncpg.Pool,
    link: StripeLink,
    own_localstripe: LocalStripe,
    stripe_direct: Payments,
) -> None:
    """A late payment whose seats were taken arrives by webhook while Stripe cannot be
    reached for the refund: the webhook is accepted (the refund owed is recorded with it),
    and the sweeper refunds it once Stripe is back."""
    _me, hold, seats, event_id = await a_hold(api, pool, outage_settings)
    event = await pay_behind_our_back(pool, stripe_direct, hold)
    async with pool.acquire() as conn:
        await expire_hold(conn, uuid.UUID(hold["hold_id"]))
    _, rival = a_fan(outage_settings)
    await reserve(api, rival, event_id, seats)

    await link.set("down")
    assert await post_webhook(api, event) == (200, {"received": True, "duplicate": False})
    [payment] = await pool.fetch(
        "SELECT id, status, failure_code FROM payments WHERE hold_id = $1",
        uuid.UUID(hold["hold_id"]),
    )
    assert (payment["status"], payment["failure_code"]) == ("succeeded", "seats_taken")

    await link.set("up")
    await eventually(
        lambda: pool.fetchval("SELECT status FROM payments WHERE id = $1", payment["id"]),
        lambda status: status == "refunded",
        10,
        "the sweeper to refund once Stripe is back",
    )
    [intent] = await asyncio.to_thread(own_localstripe.intents_for_hold, hold["hold_id"])
    charge = intent["latest_charge"] if isinstance(intent["latest_charge"], dict) else {}
    assert charge.get("refunded") or charge.get("amount_refunded") == 2 * PRICE, intent
