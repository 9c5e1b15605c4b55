"""The fairness record is public, and user ids are often guessable (sequential, e-mail
addresses): nobody may test from it whether a given user was in the pre-queue. Members are
HMACs under a key only the room has, so neither the plain hash of event and user id (what
the record published before) nor an HMAC under the shipped development secret is in it.
The control: each fan, signed in, is told their own member, finds it in the published
order at the place they were drawn to, and the draw still checks out from the record."""

from __future__ import annotations

import hashlib
import secrets

from tests.integration.booking.support import call, open_client
from tests.integration.queue.support import (
    in_snapshot,
    join,
    patch_queue,
    queue_event,
    queue_status,
)
from tests.support import auth_header, eventually, settings_with
from ticketing.config import Secret, default
from ticketing.domain.queue import draw_order, member_key, member_ref

FANS = [f"guessable-{i}" for i in range(6)]


async def test_the_record_lets_a_fan_find_themselves_but_nobody_test_a_guessed_id(
    queue_settings, pool, worker
) -> None:
    settings = settings_with(queue_settings, queue_ticket_secret=Secret(secrets.token_hex(32)))
    client = await open_client(settings)
    try:
        event = await queue_event(pool, on_sale_in=3)
        await patch_queue(client, settings, event, paused=True)
        for user in FANS:
            status, body = await join(client, settings, user, event)
            assert (status, body["status"]) == (200, "pre_queue"), body
        await in_snapshot(client, settings, event)

        async def record() -> dict:
            _, body, _ = await call(client, "GET", f"/queue/{event}/fairness", {})
            return body

        drawn = await eventually(record, lambda r: r.get("state") == "drawn", 15, "the draw")
        published = set(drawn["members"])
        assert len(published) == len(FANS)
        assert drawn["order"] == draw_order(drawn["seed"], drawn["members"])
        assert drawn["verified"] is True

        shipped = member_key(default("TICKETING_QUEUE_TICKET_SECRET"), event)
        for user in FANS:
            assert hashlib.sha256(f"{event}:{user}".encode()).hexdigest() not in published
            assert member_ref(shipped, event, user) not in published

        told = set()
        for user in FANS:
            _, mine, _ = await call(
                client, "GET", f"/queue/{event}/fairness", auth_header(settings, user)
            )
            member = mine["you"]["member"]
            assert member in published, user
            assert mine["you"]["drawn_position"] == drawn["order"].index(member) + 1
            _, place = await queue_status(client, settings, user, event)
            assert place["position"] == mine["you"]["drawn_position"], user
            told.add(member)
        assert told == published
    finally:
        await client.close()
