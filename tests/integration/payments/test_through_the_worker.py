"""Booking payments end to end: HTTP (the waitingroom app) -> RabbitMQ -> a real booking
worker -> Postgres and a real localstripe. Nothing is faked: a confirm charges a card in
localstripe, a webhook is signed the way Stripe signs it (or sent by localstripe itself),
and the worker's Prometheus counters show what happened."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.integration.booking.support import (
    WorkerProcesses,
    call,
    fan,
    make_event,
    open_client,
    running_worker,
    ticket_ids,
    wait_for_consumers,
)
from tests.integration.payments.localstripe import LocalStripe
from tests.integration.payments.steps import (
    DECLINED,
    PRICE,
    VISA,
    a_fan,
    confirm,
    pay_behind_our_back,
    post_webhook,
    reserve,
    stripe_signature,
)
from tests.integration.payments.support import (
    WEBHOOK_SECRET,
    Counters,
    expire_hold,
    scrape,
    settled_intents,
    ticket_rows,
)
from tests.support import eventually, free_port, settings_with, wait_until
from ticketing.config import Settings
from ticketing.domain.seating import Section
from ticketing.payments import Payments

BOOKING_FIELDS = {
    "booking_id",
    "hold_id",
    "status",
    "tickets",
    "amount_cents",
    "currency",
    "payment_intent_id",
    "created_at",
}


@pytest.fixture(scope="module")
def e2e_settings(booking_settings: Settings, localstripe: LocalStripe, e2e_amqp: str) -> Settings:
    return settings_with(
        booking_settings,
        amqp_url=e2e_amqp,
        stripe_api_base=localstripe.url,
        stripe_webhook_secret=WEBHOOK_SECRET,
        sweep_interval_seconds=0.2,
    )


@pytest.fixture(scope="module")
async def e2e_worker(e2e_settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[None]:
    async with running_worker(e2e_settings, pool):
        yield


@pytest.fixture
async def api(e2e_settings: Settings, e2e_worker: None) -> AsyncIterator[TestClient]:
    client = await open_client(e2e_settings)
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def stripe_client(e2e_settings: Settings) -> AsyncIterator[Payments]:
    client = Payments(e2e_settings)
    yield client
    await client.close()


async def test_confirm_books_and_every_read_shows_it(
    api: TestClient, e2e_settings: Settings, pool: asyncpg.Pool, localstripe: LocalStripe
) -> None:
    event_id = await make_event(pool, [Section("Stalls", 1, 4, PRICE)])
    seats = (await ticket_ids(pool, event_id))[:2]
    _, me = a_fan(e2e_settings)
    counters = Counters()
    hold = await reserve(api, me, event_id, seats)

    status, booking, *_ = await confirm(api, me, hold["hold_id"], key="pay-1")
    assert status == 201, booking
    assert set(booking) == BOOKING_FIELDS
    assert booking["hold_id"] == hold["hold_id"] and booking["status"] == "confirmed"
    assert [t["id"] for t in booking["tickets"]] == seats
    assert booking["tickets"] == hold["tickets"]
    assert (booking["amount_cents"], booking["currency"]) == (2 * PRICE, "EUR")
    assert booking["payment_intent_id"].startswith("pi_")
    booking_id = uuid.UUID(booking["booking_id"])
    assert await ticket_rows(pool, seats) == [("booked", booking_id)] * 2
    assert await pool.fetchval("SELECT status FROM holds WHERE id = $1", hold["hold_id"]) == (
        "confirmed"
    )
    [intent] = await settled_intents(localstripe, hold["hold_id"])
    assert (intent["id"], intent["amount"], intent["currency"]) == (
        booking["payment_intent_id"],
        2 * PRICE,
        "eur",
    )

    status, same, _ = await call(api, "GET", f"/bookings/{booking_id}", me)
    assert (status, same) == (200, booking)
    status, mine, _ = await call(api, "GET", "/me/bookings", me)
    assert status == 200 and mine["items"] == [booking] and mine["next_cursor"] is None
    status, ticket, _ = await call(api, "GET", f"/booking/{seats[0]}", me)
    assert (status, ticket) == (
        200,
        {"ticket_id": seats[0], "status": "booked", "booking_id": str(booking_id)},
    )
    status, theirs, _ = await call(api, "GET", f"/bookings/{booking_id}", fan(e2e_settings, "x"))
    assert (status, theirs["code"]) == (404, "booking_not_found")

    # Confirming again, with the same key or another or none: the same booking, no charge.
    for key in ("pay-1", "pay-2", None):
        assert (await confirm(api, me, hold["hold_id"], key=key))[:2] == (201, booking)
    assert len(await settled_intents(localstripe, hold["hold_id"])) == 1
    payments = await pool.fetch("SELECT status FROM payments WHERE hold_id = $1", hold["hold_id"])
    assert [p["status"] for p in payments] == ["succeeded"]
    # The replayed "pay-1" is answered from the stored reply, without the handler.
    assert counters.moved() == {"paid": 1, "confirmed": 3}


async def test_a_declined_card_is_402_keeps_the_hold_and_a_retry_books(
    api: TestClient, e2e_settings: Settings, pool: asyncpg.Pool, localstripe: LocalStripe
) -> None:
    event_id = await make_event(pool, [Section("Stalls", 1, 4, PRICE)])
    seats = (await ticket_ids(pool, event_id))[:1]
    _, me = a_fan(e2e_settings)
    counters = Counters()
    hold = await reserve(api, me, event_id, seats)

    status, problem, *_ = await confirm(api, me, hold["hold_id"], DECLINED)
    assert (status, problem["code"]) == (402, "payment_failed"), problem
    status, ticket, _ = await call(api, "GET", f"/booking/{seats[0]}", me)
    assert ticket["status"] == "reserved" and ticket["hold_id"] == hold["hold_id"]
    assert await ticket_rows(pool, seats) == [("reserved", None)]
    assert await settled_intents(localstripe, hold["hold_id"]) == []

    status, booking, *_ = await confirm(api, me, hold["hold_id"], VISA)
    assert status == 201 and booking["status"] == "confirmed", booking
    assert await ticket_rows(pool, seats) == [("booked", uuid.UUID(booking["booking_id"]))]
    assert len(await settled_intents(localstripe, hold["hold_id"])) == 1
    assert counters.moved() == {"declined": 1, "payment_failed": 1, "paid": 1, "confirmed": 1}


async def test_confirms_at_once_charge_once(
    api: TestClient, e2e_settings: Settings, pool: asyncpg.Pool, localstripe: LocalStripe
) -> None:
    event_id = await make_event(pool, [Section("Stalls", 1, 4, PRICE)])
    seats = (await ticket_ids(pool, event_id))[:2]
    _, me = a_fan(e2e_settings)
    hold = await reserve(api, me, event_id, seats)
    replies = await asyncio.gather(
        *(confirm(api, me, hold["hold_id"], key=k) for k in ("a", "a", "b", None, None))
    )
    assert {reply.status for reply in replies} == {201}, replies
    assert len({json.dumps(reply.body, sort_keys=True) for reply in replies}) == 1
    assert len(await settled_intents(localstripe, hold["hold_id"])) == 1
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM payments WHERE hold_id = $1 AND status = 'succeeded'",
            hold["hold_id"],
        )
        == 1
    )


async def test_unknown_malformed_and_someone_elses_holds(
    api: TestClient, e2e_settings: Settings, pool: asyncpg.Pool, localstripe: LocalStripe
) -> None:
    event_id = await make_event(pool, [Section("Stalls", 1, 4, PRICE)])
    _, owner = a_fan(e2e_settings)
    _, mallory = a_fan(e2e_settings)
    hold = await reserve(api, owner, event_id, (await ticket_ids(pool, event_id))[:1])
    counters = Counters()
    for hold_id in (str(uuid.uuid4()), "not-a-hold"):
        status, problem, *_ = await confirm(api, owner, hold_id)
        assert (status, problem["code"]) == (404, "hold_not_found"), problem
    status, problem, *_ = await confirm(api, mallory, hold["hold_id"])
    assert (status, problem["code"]) == (403, "not_your_hold"), problem
    status, problem, _ = await call(
        api, "POST", "/booking/confirm", owner, {"hold_id": hold["hold_id"]}
    )
    assert (status, problem["code"]) == (400, "validation_error")
    assert await settled_intents(localstripe, hold["hold_id"]) == []
    # The malformed id never reaches a worker.
    assert counters.moved() == {"hold_not_found": 1, "not_your_hold": 1}


async def test_a_late_payment_is_honoured_through_the_webhook_while_the_seats_are_free(
    api: TestClient,
    e2e_settings: Settings,
    pool: asyncpg.Pool,
    stripe_client: Payments,
) -> None:
    event_id = await make_event(pool, [Section("Stalls", 1, 4, PRICE)])
    seats = (await ticket_ids(pool, event_id))[:2]
    _, me = a_fan(e2e_settings)
    hold = await reserve(api, me, event_id, seats)
    event = await pay_behind_our_back(pool, stripe_client, hold)
    async with pool.acquire() as conn:
        await expire_hold(conn, uuid.UUID(hold["hold_id"]))
    counters = Counters()

    payload = json.dumps(event).encode()
    status, problem = await post_webhook(api, event, stripe_signature(payload, "whsec_forged"))
    assert (status, problem["code"]) == (400, "invalid_signature")
    assert await ticket_rows(pool, seats) == [("available", None)] * 2

    assert await post_webhook(api, event) == (200, {"received": True, "duplicate": False})
    booking = await pool.fetchrow("SELECT * FROM bookings WHERE hold_id = $1", hold["hold_id"])
    assert booking["status"] == "confirmed"
    assert booking["payment_intent_id"] == event["data"]["object"]["id"]
    assert await ticket_rows(pool, seats) == [("booked", booking["id"])] * 2
    status, mine, _ = await call(api, "GET", "/me/bookings", me)
    assert [b["booking_id"] for b in mine["items"]] == [str(booking["id"])]

    # The same delivery again: accepted (answered from the worker's stored reply for this
    # event id, so it reads as the first answer did), and nothing changes.
    assert await post_webhook(api, event) == (200, {"received": True, "duplicate": False})
    assert (
        await pool.fetchval("SELECT count(*) FROM bookings WHERE hold_id = $1", hold["hold_id"])
        == 1
    )
    assert (
        await pool.fetchval("SELECT count(*) FROM stripe_webhook_events WHERE id = $1", event["id"])
        == 1
    )
    # A confirm by the fan now answers the booking the webhook made, charging nothing.
    status, body, *_ = await confirm(api, me, hold["hold_id"])
    assert (status, body["booking_id"]) == (201, str(booking["id"]))
    assert counters.moved() == {"event_applied": 1, "confirmed": 1}


async def test_a_late_payment_is_refunded_through_the_webhook_when_the_seats_are_taken(
    api: TestClient,
    e2e_settings: Settings,
    pool: asyncpg.Pool,
    stripe_client: Payments,
    localstripe: LocalStripe,
) -> None:
    event_id = await make_event(pool, [Section("Stalls", 1, 4, PRICE)])
    seats = (await ticket_ids(pool, event_id))[:2]
    _, me = a_fan(e2e_settings)
    _, rival = a_fan(e2e_settings)
    hold = await reserve(api, me, event_id, seats)
    event = await pay_behind_our_back(pool, stripe_client, hold)
    async with pool.acquire() as conn:
        await expire_hold(conn, uuid.UUID(hold["hold_id"]))
    rivals = await reserve(api, rival, event_id, seats)
    counters = Counters()

    assert await post_webhook(api, event) == (200, {"received": True, "duplicate": False})
    booking = await pool.fetchrow("SELECT * FROM bookings WHERE hold_id = $1", hold["hold_id"])
    assert booking["status"] == "refunded"
    [payment] = await pool.fetch("SELECT * FROM payments WHERE hold_id = $1", hold["hold_id"])
    assert (payment["status"], payment["failure_code"]) == ("refunded", "seats_taken")
    # The rival keeps the seats.
    rows = await pool.fetch("SELECT status::text, hold_id FROM tickets WHERE id = ANY($1)", seats)
    assert {(r["status"], str(r["hold_id"])) for r in rows} == {("reserved", rivals["hold_id"])}
    [intent] = await asyncio.to_thread(localstripe.intents_for_hold, hold["hold_id"])
    charge = intent["latest_charge"]
    charge = charge if isinstance(charge, dict) else {}
    assert charge.get("refunded") or charge.get("amount_refunded") == 2 * PRICE, intent

    assert (await post_webhook(api, event))[0] == 200
    assert await pool.fetchval("SELECT status FROM payments WHERE id = $1", payment["id"]) == (
        "refunded"
    )
    assert counters.moved() == {"event_applied": 1, "refunded": 1}
    status, problem, *_ = await confirm(api, me, hold["hold_id"])
    assert status == 409 and problem["code"] == "hold_expired", problem


def localstripe_webhook(localstripe: LocalStripe, url: str, events: list[str]) -> None:
    body = json.dumps({"url": url, "secret": WEBHOOK_SECRET, "events": events}).encode()
    request = urllib.request.Request(
        f"{localstripe.url}/_config/webhooks/payments_e2e",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).close()


async def test_localstripes_own_webhook_is_deduplicated_against_the_confirm(
    api: TestClient, e2e_settings: Settings, pool: asyncpg.Pool, localstripe: LocalStripe
) -> None:
    url = str(api.make_url("/webhooks/stripe"))
    await asyncio.to_thread(localstripe_webhook, localstripe, url, ["payment_intent.succeeded"])
    try:
        event_id = await make_event(pool, [Section("Stalls", 1, 4, PRICE)])
        seats = (await ticket_ids(pool, event_id))[:2]
        _, me = a_fan(e2e_settings)
        hold = await reserve(api, me, event_id, seats)
        status, booking, *_ = await confirm(api, me, hold["hold_id"])
        assert status == 201, booking
        # localstripe signs and posts payment_intent.succeeded about a second later.
        delivered = await eventually(
            lambda: pool.fetch(
                "SELECT id FROM stripe_webhook_events WHERE payload->'data'->'object'->>'id' = $1",
                booking["payment_intent_id"],
            ),
            bool,
            15,
            "localstripe to deliver payment_intent.succeeded",
        )
        assert len(delivered) == 1
    finally:  # localstripe's webhooks are global: stop sending to this closing app
        await asyncio.to_thread(localstripe_webhook, localstripe, url, ["none.never"])
    assert (
        await pool.fetchval("SELECT count(*) FROM bookings WHERE hold_id = $1", hold["hold_id"])
        == 1
    )
    assert (
        await pool.fetchval("SELECT count(*) FROM payments WHERE hold_id = $1", hold["hold_id"])
        == 1
    )
    assert len(await settled_intents(localstripe, hold["hold_id"])) == 1
    status, same, _ = await call(api, "GET", f"/bookings/{booking['booking_id']}", me)
    assert (status, same) == (200, booking)


def start_workers(group: WorkerProcesses, count: int) -> list[int]:
    """Like ``group.start(count)``, with metrics ports we know so we can scrape them."""
    ports = [free_port() for _ in range(count)]
    for port in ports:
        group.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "booking_worker"],
                env={**group.env, "TICKETING_BOOKING_WORKER_METRICS_PORT": str(port)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return ports


async def test_worker_processes_charge_once_expire_holds_and_count_it(
    booking_settings: Settings,
    pool: asyncpg.Pool,
    localstripe: LocalStripe,
    isolated_amqp: str,
    worker_processes: list[WorkerProcesses],
) -> None:
    """Two real `python -m booking_worker` processes on the same partitions, holds of two
    seconds: concurrent confirms race across processes and still charge once, a hold past
    its TTL is 409 with nothing charged, and /metrics of the workers says so."""
    settings = settings_with(
        booking_settings,
        amqp_url=isolated_amqp,
        stripe_api_base=localstripe.url,
        stripe_webhook_secret=WEBHOOK_SECRET,
        hold_ttl_seconds=2,
        sweep_interval_seconds=0.2,
    )
    group = WorkerProcesses(
        settings,
        TICKETING_STRIPE_API_BASE=localstripe.url,
        TICKETING_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    worker_processes.append(group)
    ports = start_workers(group, 2)
    await wait_for_consumers(isolated_amqp, 2)
    api = await open_client(settings)
    try:
        event_id = await make_event(pool, [Section("Stalls", 1, 4, PRICE)])
        seats = await ticket_ids(pool, event_id)
        _, me = a_fan(settings)
        late = await reserve(api, me, event_id, seats[:1])
        race = await reserve(api, me, event_id, seats[1:3])
        replies = await asyncio.gather(
            *(confirm(api, me, race["hold_id"], key=k) for k in ("k", "k", "j", None, None, None))
        )
        assert {reply.status for reply in replies} == {201}, replies
        assert len({reply.body["booking_id"] for reply in replies}) == 1
        assert len(await settled_intents(localstripe, race["hold_id"])) == 1

        await eventually(
            lambda: pool.fetchval("SELECT status FROM holds WHERE id = $1", late["hold_id"]),
            lambda s: s == "expired",
            10,
            "the sweeper to expire the two-second hold",
        )
        status, problem, *_ = await confirm(api, me, late["hold_id"])
        assert (status, problem["code"]) == (409, "hold_expired"), problem
        assert await asyncio.to_thread(localstripe.intents_for_hold, late["hold_id"]) == []
    finally:
        await api.close()

    def totals() -> dict[str, float]:
        summed: dict[str, float] = {}
        for port in ports:
            for name, value in scrape(port).items():
                summed[name] = summed.get(name, 0.0) + value
        return summed

    wait_until(lambda: bool(totals()), 10, "worker metrics")
    samples = totals()
    assert samples['booking_payments_total{result="succeeded"}'] == 1
    assert samples['booking_confirm_outcomes_total{outcome="confirmed"}'] >= 4
    assert samples['booking_confirm_outcomes_total{outcome="hold_expired"}'] == 1
    assert samples.get('booking_payments_total{result="declined"}', 0) == 0
