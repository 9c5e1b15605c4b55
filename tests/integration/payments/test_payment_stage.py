"""Payments never hold up seats, end to end: HTTP (the waitingroom app) -> RabbitMQ -> a
real booking worker -> Postgres, with a real localstripe behind a network the test slows
down or silences. Reserves keep their latency while confirms wait on Stripe, many confirms
are with Stripe at once, and no more than ``payments_concurrency``. The control sends a
confirm the old way (on the event's partition queue, applied in the batch loop) and shows
that a reserve then waits behind it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import aio_pika
import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.integration.booking.support import make_event, own_vhost, ticket_ids
from tests.integration.payments.localstripe import StripeLink
from tests.integration.payments.steps import PRICE, VISA, a_fan, confirm, reserve
from tests.integration.payments.support import WEBHOOK_SECRET, booking_stack, charging
from tests.support import settings_with
from ticketing.config import Settings
from ticketing.domain.seating import Section
from ticketing.messages import (
    BOOKING_EXCHANGE,
    SIGNATURE_HEADER,
    Confirm,
    booking_routing_key,
    command_signature,
)

pytestmark = pytest.mark.usefixtures("stripe_back")

RPC_TIMEOUT = 4.0  # the worker gives up on Stripe after 3 s (ticketing.payments)
# What a reserve costs here when nothing stands in its way, with room for a busy machine.
PROMPTLY = 1.0
# How long the link holds each of Stripe's answers back in the throughput tests.
STRIPE_DELAY = 0.5


@pytest.fixture(scope="module")
def wide_amqp(booking_settings: Settings) -> Iterator[str]:
    yield from own_vhost(booking_settings.amqp_url)


def stage_settings(booking_settings: Settings, link: StripeLink, amqp: str, **kw) -> Settings:
    return settings_with(
        booking_settings,
        amqp_url=amqp,
        stripe_api_base=link.url,
        stripe_webhook_secret=WEBHOOK_SECRET,
        booking_rpc_timeout_seconds=RPC_TIMEOUT,
        **kw,
    )


@pytest.fixture(scope="module")
def wide(booking_settings: Settings, link: StripeLink, wide_amqp: str) -> Settings:
    return stage_settings(booking_settings, link, wide_amqp, payments_concurrency=64)


@pytest.fixture(scope="module")
async def api(wide: Settings, pool: asyncpg.Pool) -> AsyncIterator[TestClient]:
    async with booking_stack(wide, pool) as client:
        yield client


async def holds(
    api: TestClient, pool: asyncpg.Pool, settings: Settings, count: int
) -> tuple[int, list[tuple[dict, dict]]]:
    """An event with a seat per hold and one more, and ``count`` fans each holding one."""
    event_id = await make_event(pool, [Section("Stalls", 1, count + 4, PRICE)])
    ids = await ticket_ids(pool, event_id)
    made = []
    for seat in ids[:count]:
        name, fan = a_fan(settings)
        made.append((fan, {**await reserve(api, fan, event_id, [seat]), "user_id": name}))
    return event_id, made


async def timed_reserve(
    api: TestClient, settings: Settings, event_id: int, seat: int
) -> tuple[dict, float]:
    _, fan = a_fan(settings)
    started = time.monotonic()
    hold = await reserve(api, fan, event_id, [seat])
    return hold, time.monotonic() - started


async def test_reserves_keep_their_latency_while_confirms_wait_on_a_silent_stripe(
    api: TestClient, wide: Settings, pool: asyncpg.Pool, link: StripeLink
) -> None:
    event_id, held = await holds(api, pool, wide, 4)
    free = (await ticket_ids(pool, event_id))[4:]
    await link.set("silent")
    confirms = [asyncio.create_task(confirm(api, fan, hold["hold_id"])) for fan, hold in held]
    await charging(pool, [hold["hold_id"] for _, hold in held])
    took = []
    for seat in free[:3]:
        hold, seconds = await timed_reserve(api, wide, event_id, seat)
        assert hold["status"] == "held"
        took.append(seconds)
    assert not any(task.done() for task in confirms), "Stripe answered: no wait was measured"
    assert max(took) < PROMPTLY, took
    # Stripe never answered: each confirm is the worker's own prompt 503, the hold kept.
    for reply in await asyncio.gather(*confirms):
        assert (reply.status, reply.body["code"]) == (503, "backend_unavailable"), reply.body
        assert reply.took < RPC_TIMEOUT


async def test_control_a_confirm_in_the_batch_loop_holds_reserves_up(
    api: TestClient, wide: Settings, pool: asyncpg.Pool, link: StripeLink
) -> None:
    """The same, with the confirm sent the way a front door older than the payments stage
    sent it: on the event's partition queue, where the worker applies it in the loop that
    also applies reserves. The reserve then waits for Stripe's timeout."""
    event_id, [(_fan, hold)] = await holds(api, pool, wide, 1)
    free = (await ticket_ids(pool, event_id))[1:]
    await link.set("silent")
    command = Confirm(
        request_id=uuid.uuid4().hex,
        user_id=hold["user_id"],
        hold_id=hold["hold_id"],
        payment_method=VISA,
    ).to_wire()
    connection = await aio_pika.connect(wide.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(BOOKING_EXCHANGE)
        body = orjson.dumps({**command, "sent_at": time.time()})
        signed = {SIGNATURE_HEADER: command_signature(wide.command_secret, body)}
        await exchange.publish(
            aio_pika.Message(body, headers=signed),
            routing_key=booking_routing_key(event_id, wide.booking_partitions),
        )
    finally:
        await connection.close()
    await charging(pool, [hold["hold_id"]])
    _, seconds = await timed_reserve(api, wide, event_id, free[0])
    assert seconds > 2.0, f"the reserve took {seconds:.2f}s: nothing stood in its way"


async def test_many_payments_are_with_stripe_at_once(
    api: TestClient, wide: Settings, pool: asyncpg.Pool, link: StripeLink
) -> None:
    _, held = await holds(api, pool, wide, 8)
    await link.set("late", delay=STRIPE_DELAY)
    started = time.monotonic()
    replies = await asyncio.gather(*(confirm(api, fan, hold["hold_id"]) for fan, hold in held))
    took = time.monotonic() - started
    assert [reply.status for reply in replies] == [201] * 8, replies
    # One after another they need 8 delays at least; side by side, about one or two.
    assert took < 4 * STRIPE_DELAY, f"8 payments took {took:.2f}s"


async def test_payments_in_flight_are_bounded_by_the_setting(
    booking_settings: Settings, isolated_amqp: str, pool: asyncpg.Pool, link: StripeLink
) -> None:
    narrow = stage_settings(booking_settings, link, isolated_amqp, payments_concurrency=2)
    async with booking_stack(narrow, pool) as api:
        _, held = await holds(api, pool, narrow, 6)
        await link.set("late", delay=STRIPE_DELAY)
        started = time.monotonic()
        replies = await asyncio.gather(*(confirm(api, fan, hold["hold_id"]) for fan, hold in held))
        took = time.monotonic() - started
    assert [reply.status for reply in replies] == [201] * 6, replies
    # Two at a time: three rounds of at least one delay each.
    assert took >= 3 * STRIPE_DELAY, f"6 payments took {took:.2f}s with 2 allowed at once"
