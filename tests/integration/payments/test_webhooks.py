"""Stripe's webhooks through the front door (``POST /webhooks/stripe``, signed as Stripe
signs) to a real booking worker, about PaymentIntents a real localstripe holds: what
payments/test_through_the_worker does not already cover. A failed payment is recorded once and books
nothing; a success settles a confirm that never heard Stripe's answer, and a second
charge for a booked hold is refunded; replays, also after the stored reply was pruned,
and events about payments that are not ours change nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from booking_worker.confirm import complete_due_refunds
from tests.integration.booking.support import call
from tests.integration.payments.localstripe import LocalStripe
from tests.integration.payments.steps import (
    DECLINED,
    PRICE,
    VISA,
    Held,
    a_hold,
    confirm,
    post_webhook,
)
from tests.integration.payments.support import (
    WEBHOOK_SECRET,
    booking_stack,
    charge_unrecorded,
    metric,
    settled_intents,
    stripe_event,
    ticket_rows,
)
from tests.support import eventually, settings_with
from ticketing.config import Settings
from ticketing.payments import Payments

FAILED = "payment_intent.payment_failed"
SUCCEEDED = "payment_intent.succeeded"
ACCEPTED = (200, {"received": True, "duplicate": False})


@pytest.fixture(scope="module")
def hook_settings(
    booking_settings: Settings, own_localstripe: LocalStripe, e2e_amqp: str
) -> Settings:
    return settings_with(
        booking_settings,
        amqp_url=e2e_amqp,
        stripe_api_base=own_localstripe.url,
        stripe_webhook_secret=WEBHOOK_SECRET,
    )


@pytest.fixture(scope="module")
async def api(hook_settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[TestClient]:
    async with booking_stack(hook_settings, pool) as client:
        yield client


@pytest.fixture(scope="module")
async def stripe_client(hook_settings: Settings) -> AsyncIterator[Payments]:
    client = Payments(hook_settings)
    yield client
    await client.close()


async def unanswered(
    pool: asyncpg.Pool, stripe: Payments, stripe_view: LocalStripe, held: Held, pm: str
) -> tuple[uuid.UUID, dict[str, Any]]:
    """A confirm whose answer from Stripe never arrived: the attempt, and its intent."""
    attempt = await charge_unrecorded(
        pool, stripe, held.id, held.seats, held.hold["amount_cents"], pm
    )
    return attempt, await asyncio.to_thread(stripe_view.intent_for_attempt, attempt)


async def payment(pool: asyncpg.Pool, attempt: uuid.UUID) -> tuple[str, str | None, str | None]:
    row = await pool.fetchrow(
        "SELECT status, failure_code, payment_intent_id FROM payments WHERE id = $1", attempt
    )
    return row["status"], row["failure_code"], row["payment_intent_id"]


async def bookings_of(pool: asyncpg.Pool, held: Held) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT status, payment_intent_id FROM bookings WHERE hold_id = $1", held.id
    )
    return [(r["status"], r["payment_intent_id"]) for r in rows]


def events_counted(kind: str) -> dict[str, float]:
    return {
        r: metric("booking_stripe_events_total", type=kind, result=r)
        for r in ("applied", "duplicate")
    }


def moved(before: dict[str, float], kind: str) -> dict[str, float]:
    now = events_counted(kind)
    return {r: now[r] - before[r] for r in now if now[r] != before[r]}


async def test_a_failed_payment_is_recorded_once_books_nothing_and_frees_the_hold_to_pay(
    api: TestClient,
    hook_settings: Settings,
    pool: asyncpg.Pool,
    stripe_client: Payments,
    own_localstripe: LocalStripe,
) -> None:
    held = await a_hold(api, pool, hook_settings)
    attempt, intent = await unanswered(pool, stripe_client, own_localstripe, held, DECLINED)
    assert intent["status"] == "requires_payment_method"
    code = intent["last_payment_error"]["code"]
    event = stripe_event(FAILED, intent)
    before = events_counted(FAILED)

    assert await post_webhook(api, event) == ACCEPTED
    assert await payment(pool, attempt) == ("failed", code, intent["id"])
    stored = await pool.fetchrow(
        "SELECT type, payload FROM stripe_webhook_events WHERE id = $1", event["id"]
    )
    assert stored["type"] == FAILED
    assert await bookings_of(pool, held) == []
    assert await ticket_rows(pool, held.seats) == [("reserved", None)] * 2
    status, ticket, _ = await call(api, "GET", f"/booking/{held.seats[0]}", held.fan)
    assert (ticket["status"], ticket["hold_id"]) == ("reserved", held.hold["hold_id"])

    # Replayed: answered as the first delivery was, applied no second time.
    assert await post_webhook(api, event) == ACCEPTED
    assert (
        await pool.fetchval("SELECT count(*) FROM stripe_webhook_events WHERE id = $1", event["id"])
        == 1
    )
    assert await payment(pool, attempt) == ("failed", code, intent["id"])
    assert moved(before, FAILED) == {"applied": 1}

    # Known failed, the attempt no longer stands in the way: the fan pays with another
    # card at once, instead of being told a payment is in progress.
    status, booking, *_ = await confirm(api, held.fan, held.hold["hold_id"], VISA)
    assert status == 201, booking
    assert len(await settled_intents(own_localstripe, held.id)) == 1
    assert await bookings_of(pool, held) == [("confirmed", booking["payment_intent_id"])]


async def test_a_failure_reported_after_the_booking_undoes_nothing(
    api: TestClient,
    hook_settings: Settings,
    pool: asyncpg.Pool,
    own_localstripe: LocalStripe,
) -> None:
    """Stripe's events may come in any order: a payment_failed about an attempt already
    settled (a first card declined, then one that paid) leaves the booking as it is."""
    held = await a_hold(api, pool, hook_settings)
    status, booking, *_ = await confirm(api, held.fan, held.hold["hold_id"], VISA)
    assert status == 201, booking
    [intent] = await settled_intents(own_localstripe, held.id)
    late_failure = {**intent, "last_payment_error": {"code": "card_declined"}}

    assert await post_webhook(api, stripe_event(FAILED, late_failure)) == ACCEPTED
    attempt = uuid.UUID(intent["metadata"]["attempt_id"])
    assert await payment(pool, attempt) == ("succeeded", None, intent["id"])
    status, same, _ = await call(api, "GET", f"/bookings/{booking['booking_id']}", held.fan)
    assert (status, same) == (200, booking)


async def test_success_settles_a_live_hold_whose_confirm_never_heard_back(
    api: TestClient,
    hook_settings: Settings,
    pool: asyncpg.Pool,
    stripe_client: Payments,
    own_localstripe: LocalStripe,
) -> None:
    """The hold has not expired (test_through_the_worker covers the expired one): the webhook
    books it, and the fan's next confirm, with any key, is that booking, charged once."""
    held = await a_hold(api, pool, hook_settings)
    attempt, intent = await unanswered(pool, stripe_client, own_localstripe, held, VISA)
    before = events_counted(SUCCEEDED)

    assert await post_webhook(api, stripe_event(SUCCEEDED, intent)) == ACCEPTED
    assert await payment(pool, attempt) == ("succeeded", None, intent["id"])
    assert await bookings_of(pool, held) == [("confirmed", intent["id"])]
    assert await pool.fetchval("SELECT status FROM holds WHERE id = $1", held.id) == "confirmed"
    booking_id = await pool.fetchval("SELECT id FROM bookings WHERE hold_id = $1", held.id)
    assert await ticket_rows(pool, held.seats) == [("booked", booking_id)] * 2

    status, booking, *_ = await confirm(api, held.fan, held.hold["hold_id"], VISA)
    assert (status, booking["booking_id"]) == (201, str(booking_id)), booking
    assert booking["payment_intent_id"] == intent["id"]
    assert len(await asyncio.to_thread(own_localstripe.intents_for_hold, held.id)) == 1
    assert moved(before, SUCCEEDED) == {"applied": 1}


async def test_a_second_charge_for_a_booked_hold_is_refunded(
    api: TestClient,
    hook_settings: Settings,
    pool: asyncpg.Pool,
    stripe_client: Payments,
    own_localstripe: LocalStripe,
) -> None:
    """An attempt given up on (Stripe had not finished it when another confirm looked)
    succeeds after that other attempt booked the hold: the booking stays, the extra
    charge is refunded and counted as a duplicate charge."""
    held = await a_hold(api, pool, hook_settings)
    attempt, intent = await unanswered(pool, stripe_client, own_localstripe, held, VISA)
    await pool.execute(
        "UPDATE payments SET status = 'failed', failure_code = 'abandoned' WHERE id = $1", attempt
    )
    status, booking, *_ = await confirm(api, held.fan, held.hold["hold_id"], VISA)
    assert status == 201, booking
    refunds = metric("booking_refunds_total", reason="duplicate_charge")

    assert await post_webhook(api, stripe_event(SUCCEEDED, intent)) == ACCEPTED
    assert await payment(pool, attempt) == ("refunded", "duplicate_charge", intent["id"])
    assert await bookings_of(pool, held) == [("confirmed", booking["payment_intent_id"])]
    status, same, _ = await call(api, "GET", f"/bookings/{booking['booking_id']}", held.fan)
    assert (status, same) == (200, booking)
    refunded = await asyncio.to_thread(own_localstripe.intent_for_attempt, attempt)
    charge = refunded["latest_charge"] if isinstance(refunded["latest_charge"], dict) else {}
    assert charge.get("refunded") or charge.get("amount_refunded") == 2 * PRICE, refunded
    kept = await settled_intents(own_localstripe, held.id)
    assert booking["payment_intent_id"] in {pi["id"] for pi in kept}
    assert metric("booking_refunds_total", reason="duplicate_charge") - refunds == 1


async def test_a_replay_after_the_stored_reply_was_pruned_is_still_ignored(
    api: TestClient,
    hook_settings: Settings,
    pool: asyncpg.Pool,
    stripe_client: Payments,
    own_localstripe: LocalStripe,
) -> None:
    """Stripe redelivers for days; stored replies are pruned after a day. The event's own
    record still dedupes, and says so."""
    held = await a_hold(api, pool, hook_settings)
    _, intent = await unanswered(pool, stripe_client, own_localstripe, held, VISA)
    event = stripe_event(SUCCEEDED, intent)
    assert await post_webhook(api, event) == ACCEPTED
    before = events_counted(SUCCEEDED)
    pruned = await pool.execute(
        "DELETE FROM processed_commands WHERE request_id = $1", "stripe:" + event["id"]
    )
    assert pruned == "DELETE 1"

    assert await post_webhook(api, event) == (200, {"received": True, "duplicate": True})
    assert moved(before, SUCCEEDED) == {"duplicate": 1}
    assert len(await bookings_of(pool, held)) == 1
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM payments WHERE hold_id = $1 AND status = 'succeeded'", held.id
        )
        == 1
    )


async def test_events_about_payments_not_ours_are_acknowledged_and_change_nothing(
    api: TestClient,
    hook_settings: Settings,
    pool: asyncpg.Pool,
    stripe_client: Payments,
    own_localstripe: LocalStripe,
) -> None:
    """Another integration's payment on the same Stripe account, an attempt we have no
    record of, an event type we do not act on: 200 (or Stripe would redeliver for days),
    recorded, nothing booked."""
    held = await a_hold(api, pool, hook_settings)
    _, intent = await unanswered(pool, stripe_client, own_localstripe, held, VISA)
    foreign = [
        stripe_event(SUCCEEDED, {**intent, "metadata": {"order": "shop-42"}}),
        stripe_event(
            SUCCEEDED,
            {**intent, "metadata": {**intent["metadata"], "attempt_id": str(uuid.uuid4())}},
        ),
        stripe_event("charge.refunded", intent),
    ]
    for event in foreign:
        assert await post_webhook(api, event) == ACCEPTED, event["type"]
    recorded = await pool.fetchval(
        "SELECT count(*) FROM stripe_webhook_events WHERE id = ANY($1)", [e["id"] for e in foreign]
    )
    assert recorded == len(foreign)
    assert await bookings_of(pool, held) == []
    assert await ticket_rows(pool, held.seats) == [("reserved", None)] * 2


class CountingPayments:
    """Payments that count the refunds asked of Stripe, each taking a moment (as a network
    call does), so that runs that overlap really overlap."""

    def __init__(self, real: Payments, mine: list[uuid.UUID] | None = None) -> None:
        self.real, self.refunds, self.mine = real, 0, mine or []

    async def refund(self, payment_intent_id: str, *, idempotency_key: str) -> str:
        self.refunds += 1
        await asyncio.sleep(0.05)
        return await self.real.refund(payment_intent_id, idempotency_key=idempotency_key)


async def owing_a_refund(
    api: TestClient, pool: asyncpg.Pool, settings: Settings, stripe: Payments, view: LocalStripe
) -> uuid.UUID:
    """A charged attempt settled as owing its money back (a duplicate charge)."""
    held = await a_hold(api, pool, settings)
    attempt, intent = await unanswered(pool, stripe, view, held, VISA)
    await pool.execute(
        "UPDATE payments SET status = 'succeeded', failure_code = 'duplicate_charge',"
        " payment_intent_id = $2 WHERE id = $1",
        attempt,
        intent["id"],
    )
    return attempt


async def naive_refunds(pool: asyncpg.Pool, payments: CountingPayments) -> None:
    """The control: what complete_due_refunds did before it locked each payment (over the
    payments of ``payments.mine`` only)."""
    due = await pool.fetch(
        "SELECT id, payment_intent_id FROM payments"
        " WHERE status = 'succeeded' AND failure_code IS NOT NULL AND id = ANY($1::uuid[])",
        payments.mine,
    )
    for row in due:
        await payments.refund(row["payment_intent_id"], idempotency_key=f"refund:{row['id']}")
        await pool.execute("UPDATE payments SET status = 'refunded' WHERE id = $1", row["id"])


async def test_concurrent_refund_runs_refund_a_payment_once(
    api: TestClient,
    hook_settings: Settings,
    pool: asyncpg.Pool,
    stripe_client: Payments,
    own_localstripe: LocalStripe,
) -> None:
    """A webhook, a confirm and every worker's sweep all run complete_due_refunds, and
    localstripe ignores idempotency keys: eight runs at once must still refund once."""
    # The control: eight naive runs at once over one payment refund it more than once.
    owed = await owing_a_refund(api, pool, hook_settings, stripe_client, own_localstripe)
    control = CountingPayments(stripe_client, mine=[owed])
    await asyncio.gather(*(naive_refunds(pool, control) for _ in range(8)))
    assert control.refunds > 1, "the runs did not overlap: the test shows nothing"
    over = await asyncio.to_thread(own_localstripe.intent_for_attempt, control.mine[0])
    assert over["latest_charge"]["amount_refunded"] > over["latest_charge"]["amount"], over

    attempt = await owing_a_refund(api, pool, hook_settings, stripe_client, own_localstripe)
    counting = CountingPayments(stripe_client)
    await asyncio.gather(*(complete_due_refunds(pool, counting) for _ in range(8)))
    # The workers' own sweep (real Payments, not counted here) may have been the one.
    await eventually(lambda: payment(pool, attempt), lambda p: p[0] == "refunded", 10, "the refund")
    assert counting.refunds <= 1
    # Stripe's own record: the money went back once, whoever sent it.
    refunded = await asyncio.to_thread(own_localstripe.intent_for_attempt, attempt)
    charge = refunded["latest_charge"]
    assert charge["amount_refunded"] == charge["amount"], charge
