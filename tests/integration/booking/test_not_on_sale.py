"""No sale before the sale: reserve and confirm answer 409 not_on_sale before the event's
on_sale_at, for every event, with or without a waiting room, and change nothing. Each
case has its control: the same request once the sale is open succeeds."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from booking_worker.commands import apply_one
from booking_worker.handlers import Context, build_handlers
from booking_worker.reserve import reserve_group
from tests.integration.booking.support import call, fan, make_event, open_client, ticket_ids
from ticketing.config import Settings
from ticketing.domain.seating import Section
from ticketing.messages import Reserve

SEATS = [Section("Floor", 1, 6, 4000)]


@pytest.fixture
async def api(booking_settings: Settings, worker: None) -> AsyncIterator[TestClient]:
    """The booking front door (named apart from the catalog support's ``client``, which
    takes that name when both support modules are loaded in one run)."""
    client = await open_client(booking_settings)
    yield client
    await client.close()


async def open_at(pool: asyncpg.Pool, event_id: int, seconds_from_now: float) -> None:
    await pool.execute(
        "UPDATE events SET on_sale_at = now() + make_interval(secs => $2) WHERE id = $1",
        event_id,
        seconds_from_now,
    )


async def nothing_held(pool: asyncpg.Pool, event_id: int) -> None:
    assert await pool.fetchval("SELECT count(*) FROM holds WHERE event_id = $1", event_id) == 0
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM tickets WHERE event_id = $1 AND status <> 'available'",
            event_id,
        )
        == 0
    )


async def test_reserve_before_the_on_sale_is_409_not_on_sale_and_holds_nothing(
    api: TestClient, booking_settings: Settings, pool: asyncpg.Pool
) -> None:
    event_id = await make_event(pool, SEATS)
    await open_at(pool, event_id, 3600)
    ids = await ticket_ids(pool, event_id)
    bot = fan(booking_settings, "early-bot")
    asks = ({"event_id": event_id, "ticket_ids": ids[:2]}, {"event_id": event_id, "quantity": 2})
    for body in asks:
        status, problem, headers = await call(api, "POST", "/booking/reserve", bot, body)
        assert (status, problem["code"]) == (409, "not_on_sale"), problem
        assert headers["Content-Type"].startswith("application/problem+json")
        assert problem["on_sale_at"].endswith("Z")
    await nothing_held(pool, event_id)

    await open_at(pool, event_id, -1)  # the control: the sale opens
    status, hold, _ = await call(
        api, "POST", "/booking/reserve", bot, {"event_id": event_id, "quantity": 2}
    )
    assert status == 201 and hold["status"] == "held", hold


async def test_confirm_of_a_hold_whose_sale_was_moved_later_is_409_not_on_sale(
    api: TestClient, booking_settings: Settings, pool: asyncpg.Pool
) -> None:
    event_id = await make_event(pool, SEATS)
    me = fan(booking_settings, "moved-sale")
    status, hold, _ = await call(
        api, "POST", "/booking/reserve", me, {"event_id": event_id, "quantity": 1}
    )
    assert status == 201, hold
    await open_at(pool, event_id, 3600)  # an operator postpones the on-sale
    status, problem, _ = await call(
        api,
        "POST",
        "/booking/confirm",
        me,
        {"hold_id": hold["hold_id"], "payment_method": "pm_card_visa"},
    )
    assert (status, problem["code"]) == (409, "not_on_sale"), problem
    attempts = await pool.fetchval(
        "SELECT count(*) FROM payments WHERE hold_id = $1", uuid.UUID(hold["hold_id"])
    )
    assert attempts == 0


async def test_both_reserve_paths_refuse_a_queued_event_before_its_on_sale(
    booking_settings: Settings, pool: asyncpg.Pool
) -> None:
    """A reserve alone (a group of one, as the worker applies a command on its own) and one
    in a group both check, even for a fan who carries an admission (a waiting room's
    event)."""
    event_id = await make_event(pool, SEATS, queue_enabled=True)
    await open_at(pool, event_id, 3600)
    ctx = Context(booking_settings)

    def command(user: str) -> Reserve:
        return Reserve(
            request_id=uuid.uuid4().hex, user_id=user, event_id=event_id, quantity=1, admitted=True
        )

    async with pool.acquire() as conn:
        async with conn.transaction():
            alone = await apply_one(ctx, conn, build_handlers(), command("alone"))
        assert (alone.status, alone.body["code"]) == (409, "not_on_sale"), alone
        async with conn.transaction():
            [(status, body)] = await reserve_group(ctx, conn, event_id, [command("batched")])
        assert (status, body["code"]) == (409, "not_on_sale"), body
    await nothing_held(pool, event_id)

    await open_at(pool, event_id, -1)  # the control
    async with pool.acquire() as conn, conn.transaction():
        alone = await apply_one(ctx, conn, build_handlers(), command("alone"))
    assert alone.status == 201, alone
