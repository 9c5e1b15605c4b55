"""Joining the line: a fan's place is kept when they join again, the status has the join's
shape, bad input changes nothing, and a queue ticket works only for its fan and event and
restores a place Redis lost (not one the fan gave up)."""

from __future__ import annotations

import pytest

from tests.integration.booking.support import call
from tests.integration.queue.support import join, patch_queue, queue_event, queue_status
from tests.support import auth_header
from waitingroom.queue.runtime import QUEUE_KEY

STATUS_FIELDS = {
    "event_id",
    "status",
    "position",
    "ahead",
    "eta_seconds",
    "queue_ticket",
    "on_sale_at",
    "waiting",
    "admit_rate_per_minute",
}


async def test_join_again_keeps_the_place_and_status_has_the_same_shape(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, paused=True)
    places = {}
    for user in ("first", "second", "third"):
        status, body = await join(qclient, queue_settings, user, event)
        assert status == 200, body
        assert set(body) == STATUS_FIELDS
        places[user] = body
    assert [places[u]["position"] for u in ("first", "second", "third")] == [1, 2, 3]
    assert [places[u]["ahead"] for u in ("first", "second", "third")] == [0, 1, 2]
    assert all(b["status"] == "paused" and b["event_id"] == event for b in places.values())
    status, again = await join(qclient, queue_settings, "first", event)
    assert (status, again["position"], again["ahead"]) == (200, 1, 0)
    status, polled = await queue_status(qclient, queue_settings, "second", event)
    assert status == 200 and set(polled) == STATUS_FIELDS
    assert (polled["position"], polled["ahead"]) == (2, 1)
    status, body = await queue_status(qclient, queue_settings, "never-joined", event)
    assert (status, body["code"]) == (404, "not_in_queue")


@pytest.mark.parametrize(
    "body", [[1], "x", {"queue_ticket": 5}, {"queue_ticket": "forged"}, {"seat": 1}]
)
async def test_join_refuses_bad_input(qclient, queue_settings, pool, body) -> None:
    event = await queue_event(pool)
    status, problem = await join(qclient, queue_settings, "val", event, body)
    assert (status, problem["code"]) == (400, "validation_error"), body
    status, problem = await queue_status(qclient, queue_settings, "val", event)
    assert status == 404  # nothing changed


async def test_a_queue_ticket_works_only_for_its_fan_and_event(
    qclient, queue_settings, pool
) -> None:
    event, other = await queue_event(pool), await queue_event(pool)
    _, mine = await join(qclient, queue_settings, "owner", event)
    ticket = {"queue_ticket": mine["queue_ticket"]}
    status, problem = await join(qclient, queue_settings, "thief", event, ticket)
    assert (status, problem["code"]) == (403, "queue_ticket_invalid")
    status, problem = await join(qclient, queue_settings, "owner", other, ticket)
    assert (status, problem["code"]) == (403, "queue_ticket_invalid")


async def test_a_queue_ticket_restores_a_place_redis_lost_but_not_one_given_up(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, paused=True)
    tickets = {}
    for user in ("early", "middle", "late"):
        _, body = await join(qclient, queue_settings, user, event)
        tickets[user] = {"queue_ticket": body["queue_ticket"]}
    # "middle" leaves, then tries to come back to the same place with its ticket
    status, _, _ = await call(
        qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, "middle")
    )
    assert status == 204
    _, back = await join(qclient, queue_settings, "middle", event, tickets["middle"])
    assert back["position"] == 3  # behind "late": a place given up is gone
    # Redis loses the queue (a flush, a failover to a replica that had nothing)
    store = qclient.app[QUEUE_KEY].store
    await store.redis.delete(*store.keys(event, "waiting", "pre", "active", "seen", "state"))
    await patch_queue(qclient, queue_settings, event, paused=True)
    _, newcomer = await join(qclient, queue_settings, "newcomer", event)
    assert newcomer["position"] == 1
    _, late = await join(qclient, queue_settings, "late", event, tickets["late"])
    assert late["position"] == 1
    _, early = await join(qclient, queue_settings, "early", event, tickets["early"])
    assert early["position"] == 1
    # both kept their places ahead of the newcomer, in their original order
    positions = [
        (await queue_status(qclient, queue_settings, user, event))[1]["position"]
        for user in ("early", "late", "newcomer")
    ]
    assert positions == [1, 2, 3]


async def test_a_queue_ticket_restores_a_join_a_failover_lost(
    qclient, queue_settings, pool
) -> None:
    """A Redis primary killed a moment after a join: the promoted replica never had it
    (joins replicate asynchronously), the queue keeps its epoch and later joins move its
    `last` on. The fan's ticket still gives the place back, as a fan who has not departed
    (the test above, "middle", is the control: a fan who left gets no place back)."""
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, paused=True)
    tickets = {}
    for user in ("first", "lost", "third"):
        _, body = await join(qclient, queue_settings, user, event)
        tickets[user] = {"queue_ticket": body["queue_ticket"]}
    store = qclient.app[QUEUE_KEY].store
    # what the promoted replica lacks: "lost"'s join, and nothing else
    assert await store.redis.zrem(store.key(event, "waiting"), "lost") == 1
    await store.redis.zrem(store.key(event, "seen"), "lost")
    _, newcomer = await join(qclient, queue_settings, "newcomer", event)
    assert newcomer["position"] == 3
    _, back = await join(qclient, queue_settings, "lost", event, tickets["lost"])
    assert back["position"] == 2  # its own place, between "first" and "third"
    # without the ticket a fan out of the line joins at the back like anyone
    await store.redis.zrem(store.key(event, "waiting"), "third")
    _, third = await join(qclient, queue_settings, "third", event)
    assert third["position"] == 4
