"""Locks, waited for and left behind: a confirm that waited for the hold's lock sees the
attempt committed meanwhile, a settle that waited sees the booking committed meanwhile
(each with the control that shows the stale read is real), and the payments pool releases
the session lock a refund may leave on a connection and skips the reset otherwise."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from booking_worker import confirm
from booking_worker import settle as settling
from booking_worker.attempt_locks import AttemptLocks
from booking_worker.confirm import close_payment_resources, confirm_hold, payment_resources
from booking_worker.handlers import Context
from booking_worker.payment_resources import may_hold_session_locks
from tests.integration.payments.localstripe import LocalStripe
from tests.integration.payments.support import (
    HeldSeats,
    charge_unrecorded,
    confirm_command,
    payment_rows,
    ticket_states,
)
from tests.support import eventually
from ticketing.config import Settings
from ticketing.payments import Payments


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
