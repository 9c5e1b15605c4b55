"""The booking front door (``python -m waitingroom --role booking``): the booking routes of
the waitingroom in a process that holds no sockets and runs none of the queue's loops, yet
keeps the queue's books (admission sessions, claims, the session ended by a booking)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp.test_utils import TestClient, TestServer

from tests.integration.booking.support import call, fan
from tests.integration.queue.support import (
    join,
    patch_queue,
    queue_event,
    queue_status,
    wait_status,
)
from ticketing.config import Settings
from waitingroom.app import create_app
from waitingroom.booking.commands import RPC_KEY
from waitingroom.queue.runtime import QUEUE_KEY


@asynccontextmanager
async def front_door(settings: Settings) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(create_app(settings, "booking")))
    await client.start_server()
    try:
        await asyncio.wait_for(client.app[RPC_KEY].connected.wait(), 10)
        yield client
    finally:
        await client.close()


async def pay_and_leave(
    door: TestClient, queue: TestClient, settings: Settings, user: str, event: int, hold: dict
) -> None:
    """``user`` pays for ``hold`` through the front door: booked, and their session is over."""
    status, booking, _ = await call(
        door,
        "POST",
        "/booking/confirm",
        fan(settings, user),
        {"hold_id": hold["hold_id"], "payment_method": "pm_card_visa"},
    )
    assert status == 201, booking
    status, problem = await queue_status(queue, settings, user, event)
    assert (status, problem["code"]) == (404, "not_in_queue")


async def test_a_front_door_books_for_the_queue_without_running_it(
    paying_queue_settings, pool
) -> None:
    from tests.integration.payments.support import booking_stack

    settings = paying_queue_settings
    event = await queue_event(pool)
    async with booking_stack(settings, pool) as queue, front_door(settings) as door:
        await patch_queue(queue, settings, event, admit_per_minute=6000, max_active=1)
        await join(queue, settings, "door-buyer", event)
        await join(queue, settings, "door-next", event)
        admitted = await wait_status(queue, settings, "door-buyer", event, "admitted")
        me = {**fan(settings, "door-buyer"), "X-Admission-Token": admitted["admission_token"]}

        # the queue's own routes are not the front door's (asked of its router: over HTTP
        # the 404 would be a reply the gateway's document does not give that route)
        served = {resource.canonical for resource in door.app.router.resources()}
        assert "/booking/reserve" in served and "/queue/{event_id}/status" not in served

        status, hold, _ = await call(
            door, "POST", "/booking/reserve", me, {"event_id": event, "quantity": 2}
        )
        assert status == 201, hold
        # the front door keeps the hold's event for the confirm to come
        assert door.app[QUEUE_KEY].hold_events[hold["hold_id"]] == event
        # the claim reached the queue: the fan holds seats now, not "admitted, choosing"
        store = queue.app[QUEUE_KEY].store
        assert await store.redis.zscore(store.key(event, "unclaimed"), "door-buyer") is None
        assert (await queue_status(queue, settings, "door-buyer", event))[1]["status"] == (
            "admitted"
        )

        # booked: the session ended and the slot went to the next fan; the event is
        # forgotten (a booked hold is not asked about again)
        await pay_and_leave(door, queue, settings, "door-buyer", event, hold)
        assert hold["hold_id"] not in door.app[QUEUE_KEY].hold_events
        admitted = await wait_status(queue, settings, "door-next", event, "admitted", timeout=3)

        # a hold reserved through another process: the front door finds its event in
        # PostgreSQL, and the booking ends that fan's session too
        them = {**fan(settings, "door-next"), "X-Admission-Token": admitted["admission_token"]}
        status, hold, _ = await call(
            queue, "POST", "/booking/reserve", them, {"event_id": event, "quantity": 1}
        )
        assert status == 201, hold
        assert hold["hold_id"] not in door.app[QUEUE_KEY].hold_events
        await pay_and_leave(door, queue, settings, "door-next", event, hold)

        # the front door never drew or admitted anything (the queue's process did), and
        # holds no socket room
        assert event in queue.app[QUEUE_KEY].admitter._drawn
        assert not door.app[QUEUE_KEY].admitter._drawn
        assert door.app[QUEUE_KEY].hub.count() == 0
