"""Confirm and Stripe events against real Postgres and localstripe, calling the handlers
directly: declines keep the hold, confirming twice charges once, a payment that succeeded
while we were not looking is settled (booked or refunded), webhook replays change nothing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from booking_worker import confirm
from booking_worker import settle as settling
from booking_worker.attempt_locks import AttemptLocks
from booking_worker.confirm import close_payment_resources, confirm_hold, payment_resources
from booking_worker.handlers import Context
from booking_worker.payment_resources import may_hold_session_locks
from booking_worker.stripe_events import apply_stripe_event
from tests.integration.payments.localstripe import LocalStripe
from tests.integration.payments.support import (
    WEBHOOK_SECRET,
    HeldSeats,
    charge_unrecorded,
    expire_hold,
    hold_seats,
    seed_event,
)
from tests.support import eventually, free_port, settings_with
from ticketing.config import Settings
from ticketing.messages import Confirm
from ticketing.payments import (
    InvalidSignature,
    Payments,
    PaymentSucceeded,
    intent_metadata,
    verify_webhook,
)


@pytest.fixture(scope="module")
async def pool(payment_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(payment_settings.database_url, min_size=1, max_size=6)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def payments(payment_settings: Settings) -> AsyncIterator[Payments]:
    client = Payments(payment_settings)
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def locks(payment_settings: Settings) -> AsyncIterator[AttemptLocks]:
    """This test process's attempt locks, as a worker process has one set."""
    locks = AttemptLocks(payment_settings.database_url)
    yield locks
    await locks.close()


@pytest.fixture
async def held(pool: asyncpg.Pool) -> HeldSeats:
    async with pool.acquire() as conn:
        event_id = await seed_event(conn)
        return await hold_seats(conn, event_id, "fan-" + uuid.uuid4().hex[:8])


def confirm_command(held: HeldSeats, pm: str, request_id: str | None = None, **kw: Any) -> Confirm:
    fields = {"user_id": held.user_id, "hold_id": str(held.hold_id), **kw}
    return Confirm(request_id=request_id or uuid.uuid4().hex, payment_method=pm, **fields)


async def ticket_states(pool: asyncpg.Pool, ids: list[int]) -> list[str]:
    rows = await pool.fetch("SELECT status FROM tickets WHERE id = ANY($1) ORDER BY id", ids)
    return [str(r["status"]) for r in rows]


async def payment_rows(pool: asyncpg.Pool, hold_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM payments WHERE hold_id = $1 ORDER BY created_at", hold_id
    )


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


def signed(payload: bytes, secret: str, at: int | None = None) -> str:
    at = at or int(time.time())
    digest = hmac.new(secret.encode(), b"%d.%s" % (at, payload), hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def test_webhook_signatures_are_checked() -> None:
    payload = json.dumps({"id": "evt_1", "object": "event", "type": "x", "data": {}}).encode()
    assert verify_webhook(payload, signed(payload, WEBHOOK_SECRET), WEBHOOK_SECRET)["id"] == (
        "evt_1"
    )
    for header in (
        signed(payload, "whsec_other"),
        None,
        "garbage",
        signed(payload, WEBHOOK_SECRET, at=int(time.time()) - 3600),
    ):
        with pytest.raises(InvalidSignature):
            verify_webhook(payload, header, WEBHOOK_SECRET)


async def test_an_attempt_is_found_behind_the_hundreds_of_payments_made_since(
    pool: asyncpg.Pool, payments: Payments, held: HeldSeats, localstripe: LocalStripe
) -> None:
    """At an on-sale a hundred other payments may be made between a worker's crash and the
    look-up that settles its attempt. Stripe (and our localstripe) list the newest first,
    so the look-up reads pages back to the attempt's own time; the control, one page, as
    the look-up used to read, misses it."""
    attempt_id = await charge_unrecorded(
        pool, payments, held.hold_id, held.ticket_ids, 5000, "pm_card_visa"
    )
    others = asyncio.Semaphore(16)

    async def another() -> None:
        async with others:
            await payments.charge(
                idempotency_key="other-" + uuid.uuid4().hex,
                amount_cents=100,
                currency="EUR",
                payment_method="pm_card_visa",
                metadata={"purpose": "traffic"},
            )

    await asyncio.gather(*(another() for _ in range(150)))
    created = await pool.fetchval("SELECT created_at FROM payments WHERE id = $1", attempt_id)
    assert await payments.find_attempt(str(attempt_id)) is None  # the control: one page
    found = await payments.find_attempt(str(attempt_id), since=created.timestamp() - 60)
    assert found is not None and found.status == "succeeded"
    assert found.metadata["hold_id"] == str(held.hold_id)


@contextlib.asynccontextmanager
async def recording_hop(upstream: str) -> AsyncIterator[tuple[str, list[tuple[str, str, Any]]]]:
    """An HTTP hop to ``upstream`` (the real localstripe) that notes each request's method,
    path and Idempotency-Key header, and passes it and its answer through unchanged."""
    seen: list[tuple[str, str, Any]] = []
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, request.headers.get("Idempotency-Key")))
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type", "idempotency-key")
        }
        async with session.request(
            request.method, upstream + request.path_qs, data=await request.read(), headers=headers
        ) as resp:
            return web.Response(
                status=resp.status, body=await resp.read(), content_type="application/json"
            )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()
        await session.close()


async def test_each_stripe_call_carries_its_own_idempotency_key(
    payment_settings: Settings, localstripe: LocalStripe
) -> None:
    """Charges and refunds are raw SDK requests: the key must still travel as the
    Idempotency-Key header (the SDK makes one up for a POST without it, so the check is
    that it is ours), and a look-up sends none."""
    attempt = uuid.uuid4().hex
    async with recording_hop(localstripe.url) as (url, seen):
        client = Payments(settings_with(payment_settings, stripe_api_base=url))
        try:
            paid = await client.charge(
                idempotency_key=f"charge-{attempt}",
                amount_cents=2500,
                currency="EUR",
                payment_method="pm_card_visa",
                metadata={"attempt_id": attempt},
            )
            assert isinstance(paid, PaymentSucceeded)
            refund = await client.refund(
                paid.payment_intent_id, idempotency_key=f"refund-{attempt}"
            )
            found = await client.find_attempt(attempt)
        finally:
            await client.close()
    assert seen == [
        ("POST", "/v1/payment_intents", f"charge-{attempt}"),
        ("POST", "/v1/refunds", f"refund-{attempt}"),
        ("GET", "/v1/payment_intents", None),
    ]
    assert refund.startswith("re_")
    assert found is not None and found.payment_intent_id == paid.payment_intent_id
    assert found.metadata == {"attempt_id": attempt}
    [intent] = [
        pi
        for pi in await asyncio.to_thread(localstripe._intents)
        if pi["metadata"].get("attempt_id") == attempt
    ]
    assert (intent["amount"], intent["currency"], intent["status"]) == (2500, "eur", "succeeded")


async def waits_for_a_lock(pool: asyncpg.Pool, marker: str) -> None:
    """Until another backend running a statement that contains ``marker`` waits on a lock."""

    async def waiting() -> int:
        return await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()",
            marker,
        )

    await eventually(waiting, lambda n: n > 0, 10, f"a statement with {marker!r} to wait")


async def test_an_attempt_committed_while_a_confirm_waited_for_the_hold_is_seen(
    pool: asyncpg.Pool,
    payments: Payments,
    held: HeldSeats,
    localstripe: LocalStripe,
    locks: AttemptLocks,
) -> None:
    """Another attempt of the hold (another request) commits 'pending' while this confirm
    waits for the hold's lock: the confirm must see it and not charge as well. The control
    shows why the confirm reads the attempts in a statement of their own once the lock is
    held: one statement that locks the hold and reads them, as folding the two would, reads
    them as they were before it waited, and finds none."""
    other_key = f"confirm:{held.hold_id}:other-" + uuid.uuid4().hex

    async def while_another_attempt_starts(waiter: Any, marker: str) -> Any:
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                await conn.execute("SELECT 1 FROM holds WHERE id = $1 FOR UPDATE", held.hold_id)
                task = asyncio.ensure_future(waiter())
                await waits_for_a_lock(pool, marker)
                await conn.execute(
                    "INSERT INTO payments (id, hold_id, idempotency_key, amount_cents, currency,"
                    " status) VALUES ($1, $2, $3, 5000, 'EUR', 'pending')"
                    " ON CONFLICT (idempotency_key) DO NOTHING",
                    uuid.uuid4(),
                    held.hold_id,
                    other_key,
                )
            finally:
                await tx.commit()
        return await task

    folded = await while_another_attempt_starts(
        lambda: pool.fetchval(
            "WITH h AS (SELECT id FROM holds WHERE id = $1 FOR UPDATE)"
            " SELECT count(*) FROM payments p JOIN h ON p.hold_id = h.id"
            " WHERE p.status = 'pending' /* folded */",
            held.hold_id,
        ),
        "/* folded */",
    )
    assert folded == 0  # the control: the attempt committed meanwhile is not seen

    await pool.execute("DELETE FROM payments WHERE idempotency_key = $1", other_key)
    status, body = await while_another_attempt_starts(
        lambda: confirm_hold(pool, payments, locks, confirm_command(held, "pm_card_visa")),
        "FOR UPDATE OF h",
    )
    assert (status, body["code"]) == (409, "payment_in_progress"), body
    assert localstripe.intents_for_hold(held.hold_id) == []
    assert [p["idempotency_key"] for p in await payment_rows(pool, held.hold_id)] == [other_key]


async def test_a_booking_committed_while_a_settle_waited_is_not_booked_twice(
    pool: asyncpg.Pool, payments: Payments, held: HeldSeats
) -> None:
    """settle_success books in one statement whose snapshot is taken before it waits for
    its locks, so a booking of the hold committed meanwhile is not seen by its check; the
    hold's unique booking makes the insert do nothing, and the payment is settled as the
    duplicate it is. The control, the same statement without that guard, fails on the
    unique key: the stale read is real."""
    attempt_id = await charge_unrecorded(
        pool, payments, held.hold_id, held.ticket_ids, 5000, "pm_card_visa"
    )
    found = await payments.find_attempt(str(attempt_id))
    assert found is not None
    intent = found.payment_intent_id
    unguarded = settling._BOOK.replace("ON CONFLICT (hold_id) DO NOTHING", "")
    assert unguarded != settling._BOOK
    booking_id = uuid.uuid4()

    async def while_another_books(waiter: Any) -> Any:
        """Holds the attempt's row while ``waiter`` settles it, and meanwhile commits a
        booking of the hold (an earlier attempt's, left refunded) with its seats still
        free for this one."""
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                await conn.execute("SELECT 1 FROM payments WHERE id = $1 FOR UPDATE", attempt_id)
                task = asyncio.ensure_future(waiter())
                await waits_for_a_lock(pool, "WITH attempt AS MATERIALIZED")
                await pool.execute(
                    "INSERT INTO bookings (id, hold_id, event_id, user_id, status, amount_cents,"
                    " currency, payment_intent_id) VALUES ($1, $2, $3, $4, 'refunded', 5000,"
                    " 'EUR', 'pi_earlier') ON CONFLICT (hold_id) DO NOTHING",
                    booking_id,
                    held.hold_id,
                    held.event_id,
                    held.user_id,
                )
            finally:
                await tx.commit()
        return await asyncio.gather(task, return_exceptions=True)

    async def settle_unguarded() -> Any:
        return await pool.fetch(
            unguarded, attempt_id, intent, held.ticket_ids, uuid.uuid4(), "t", "{}"
        )

    [control] = await while_another_books(settle_unguarded)
    assert isinstance(control, asyncpg.UniqueViolationError), control
    await pool.execute("DELETE FROM bookings WHERE id = $1", booking_id)  # committed again below

    async def settle() -> settling.Settled:
        async with pool.acquire() as conn:
            return await settling.settle_success(conn, attempt_id, intent, held.ticket_ids)

    [settled] = await while_another_books(settle)
    assert settled == settling.Settled(booking_id, True), settled
    bookings = await pool.fetch("SELECT id FROM bookings WHERE hold_id = $1", held.hold_id)
    assert [b["id"] for b in bookings] == [booking_id]
    [payment] = await payment_rows(pool, held.hold_id)
    assert (payment["status"], payment["failure_code"]) == ("succeeded", "duplicate_charge")
    assert await ticket_states(pool, held.ticket_ids) == ["reserved", "reserved"]
    # Owed back, as every duplicate is (and no refund is left due for later tests).
    await confirm.complete_due_refunds(pool, payments)
    [payment] = await payment_rows(pool, held.hold_id)
    assert payment["status"] == "refunded"


async def test_the_payments_pool_releases_a_refunds_lock_left_behind_and_skips_the_rest(
    payment_settings: Settings,
) -> None:
    """The payments pool does not send asyncpg's reset query on every release; a session
    advisory lock that a refund may have left (complete_due_refunds marks its connection
    until it lets go) is released when the connection goes back, and an open transaction
    is still rolled back. The control: a lock that nothing marked stays on the connection,
    so the pool really skips the reset for what it is not told of."""
    ctx = Context(payment_settings)
    pool, _ = await payment_resources(ctx)

    async def session_locks(pid: int) -> int:
        return await pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1", pid
        )

    try:
        async with pool.acquire() as conn:
            pid = conn.get_server_pid()
            may_hold_session_locks.add(pid)  # as a refund does before it asks
            assert await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended('r', 0))")
            await conn.execute("BEGIN")  # and a transaction nobody ended
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid
            assert not conn.is_in_transaction()
            assert await session_locks(pid) == 0
            await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended('u', 0))")
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid
            assert await session_locks(pid) == 1  # the control: unmarked, kept
            await conn.execute("SELECT pg_advisory_unlock_all()")
    finally:
        await close_payment_resources(ctx)
