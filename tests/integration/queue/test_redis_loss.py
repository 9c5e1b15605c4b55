"""Issue 12: a Redis restart (no persistence) must not end every admitted fan's session.

The admission token names the queue epoch it was issued in; a reserve with a valid token
whose session is missing gets the session back when, and only when, the queue lost its
state since (another epoch now), and so does a join with the admitted fan's queue ticket.
The controls: in the same queue state a session that ended (the fan left, or the session
restored once and then left) stays ended; a token from before epochs were signed in is
refused as before; a fan the new state admitted again cannot get a second session with
the old token.

Each loss deletes only this test's event's keys under this run's prefix (the shared Redis
holds other runs' keys), every one of them, as a restart without persistence would."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from tests.integration.booking.support import call, fan
from tests.integration.queue.support import (
    admitted_fan,
    get_queue,
    in_snapshot,
    join,
    lose_the_queue,
    patch_queue,
    queue_event,
    queue_status,
    socket_path,
    until,
    wait_status,
)
from tests.support import auth_header, eventually
from ticketing.config import Settings
from waitingroom.queue.admission import admission_for_session
from waitingroom.queue.runtime import QUEUE_KEY


async def reserve(client, settings: Settings, user: str, event: int, token: str):
    headers = {**fan(settings, user), "X-Admission-Token": token}
    status, body, _ = await call(
        client, "POST", "/booking/reserve", headers, {"event_id": event, "quantity": 1}
    )
    return status, body


async def leave(client, settings: Settings, user: str, event: int) -> None:
    status, _, _ = await call(client, "POST", f"/queue/{event}/leave", auth_header(settings, user))
    assert status == 204


def epoch_of(token: str) -> str | None:
    return jwt.decode(token, options={"verify_signature": False}).get("epoch")


async def test_an_admitted_fans_reserve_after_a_redis_loss_gets_the_session_back(
    qclient, queue_settings, pool
) -> None:
    event, admitted = await admitted_fan(qclient, queue_settings, pool, "kept")
    token = admitted["admission_token"]
    assert epoch_of(token)  # the token names the queue state it was issued in
    assert (await get_queue(qclient, queue_settings, event))["active"] == 1

    await lose_the_queue(qclient, event)
    assert (await get_queue(qclient, queue_settings, event))["active"] == 0
    status, problem = await queue_status(qclient, queue_settings, "kept", event)
    assert (status, problem["code"]) == (404, "not_in_queue")  # status alone cannot tell

    status, hold = await reserve(qclient, queue_settings, "kept", event, token)
    assert status == 201, hold
    assert (await get_queue(qclient, queue_settings, event))["active"] == 1  # counted again
    _, now = await queue_status(qclient, queue_settings, "kept", event)
    assert now["status"] == "admitted"
    # the same session (same end), in the queue state Redis has now
    assert now["admission_expires_at"] == admitted["admission_expires_at"]
    assert epoch_of(now["admission_token"]) not in (None, epoch_of(token))
    # the old token keeps working while the session stands
    status, again = await reserve(qclient, queue_settings, "kept", event, token)
    assert status == 201, again


async def test_a_session_that_ended_stays_ended_with_or_without_a_loss(
    qclient, queue_settings, pool
) -> None:
    """The control: the same kind of token, a session that really ended (the fan left)."""
    event, admitted = await admitted_fan(qclient, queue_settings, pool, "leaver")
    token = admitted["admission_token"]
    await leave(qclient, queue_settings, "leaver", event)
    status, problem = await reserve(qclient, queue_settings, "leaver", event, token)
    assert (status, problem["code"]) == (403, "admission_invalid"), problem
    assert (await get_queue(qclient, queue_settings, event))["active"] == 0

    # Restored once after a loss, then ended in the new state: ended for good, for the
    # token and for the admitted fan's queue ticket alike.
    event, admitted = await admitted_fan(qclient, queue_settings, pool, "twice")
    token = admitted["admission_token"]
    await lose_the_queue(qclient, event)
    await patch_queue(qclient, queue_settings, event, paused=True)  # nobody admitted meanwhile
    status, hold = await reserve(qclient, queue_settings, "twice", event, token)
    assert status == 201, hold
    await leave(qclient, queue_settings, "twice", event)
    status, problem = await reserve(qclient, queue_settings, "twice", event, token)
    assert (status, problem["code"]) == (403, "admission_invalid"), problem
    status, body = await join(
        qclient, queue_settings, "twice", event, {"queue_ticket": admitted["queue_ticket"]}
    )
    assert status == 200, body
    assert (body["status"], body["position"]) == ("paused", 1), body  # in line, not admitted
    assert (await get_queue(qclient, queue_settings, event))["active"] == 0


async def test_a_token_from_before_epochs_is_refused_as_before(
    qclient, queue_settings, pool
) -> None:
    event, admitted = await admitted_fan(qclient, queue_settings, pool, "old-token")
    store = qclient.app[QUEUE_KEY].store
    ends = await store.redis.zscore(store.key(event, "active"), "old-token")
    old = admission_for_session(queue_settings, "old-token", event, int(ends) // 1000)
    assert epoch_of(old) is None
    await lose_the_queue(qclient, event)
    status, problem = await reserve(qclient, queue_settings, "old-token", event, old)
    assert (status, problem["code"]) == (403, "admission_invalid"), problem
    assert (await get_queue(qclient, queue_settings, event))["active"] == 0
    # the same session's token with its epoch would have it back
    status, hold = await reserve(
        qclient, queue_settings, "old-token", event, admitted["admission_token"]
    )
    assert status == 201, hold


async def test_an_admitted_fans_queue_ticket_gets_the_session_back_on_join(
    qclient, queue_settings, pool
) -> None:
    event, admitted = await admitted_fan(qclient, queue_settings, pool, "rejoiner")
    ticket = {"queue_ticket": admitted["queue_ticket"]}
    assert (await get_queue(qclient, queue_settings, event))["active"] == 1
    await lose_the_queue(qclient, event)
    await patch_queue(qclient, queue_settings, event, paused=True)  # nobody admitted meanwhile
    _, newcomer = await join(qclient, queue_settings, "newcomer", event)
    assert newcomer["position"] == 1

    started_ms = time.time() * 1000
    status, back = await join(qclient, queue_settings, "rejoiner", event, ticket)
    assert status == 200, back
    assert back["status"] == "admitted" and back["admission_token"], back
    assert back["admission_expires_at"] == admitted["admission_expires_at"]
    assert epoch_of(back["admission_token"]) not in (None, epoch_of(admitted["admission_token"]))
    figures = await get_queue(qclient, queue_settings, event)
    assert (figures["active"], figures["waiting"]) == (1, 1)
    # a fresh claim window, as at admission (no operator set one here: the default,
    # TICKETING_ADMISSION_CLAIM_SECONDS)
    store = qclient.app[QUEUE_KEY].store
    claim_by = await store.redis.zscore(store.key(event, "unclaimed"), "rejoiner")
    window_ms = queue_settings.admission_claim_seconds * 1000
    assert claim_by == pytest.approx(started_ms + window_ms, abs=3000)
    # joining again with the same ticket answers the same session
    _, again = await join(qclient, queue_settings, "rejoiner", event, ticket)
    assert again["admission_token"] == back["admission_token"]
    status, hold = await reserve(
        qclient, queue_settings, "rejoiner", event, back["admission_token"]
    )
    assert status == 201, hold


async def test_an_admitted_ticket_from_the_same_state_is_a_plain_join(
    qclient, queue_settings, pool
) -> None:
    """The control for the join: the fan left, the queue lost nothing; their admitted ticket
    puts them at the back like anyone else."""
    event, admitted = await admitted_fan(qclient, queue_settings, pool, "gone")
    await patch_queue(qclient, queue_settings, event, paused=True)
    await join(qclient, queue_settings, "ahead", event)
    await leave(qclient, queue_settings, "gone", event)
    status, body = await join(
        qclient, queue_settings, "gone", event, {"queue_ticket": admitted["queue_ticket"]}
    )
    assert status == 200, body
    assert (body["status"], body["position"]) == ("paused", 2), body
    assert (await get_queue(qclient, queue_settings, event))["active"] == 0


async def test_a_fan_the_new_state_admitted_again_gets_no_second_session_from_the_old_token(
    qclient, queue_settings, pool
) -> None:
    event, admitted = await admitted_fan(qclient, queue_settings, pool, "again")
    first = admitted["admission_token"]
    await lose_the_queue(qclient, event)
    # back without the ticket: at the back of the new line, then admitted as anyone
    status, _ = await join(qclient, queue_settings, "again", event)
    assert status == 200
    second = await wait_status(qclient, queue_settings, "again", event, "admitted", timeout=15)
    assert epoch_of(second["admission_token"]) != epoch_of(first)
    await leave(qclient, queue_settings, "again", event)
    status, problem = await reserve(qclient, queue_settings, "again", event, first)
    assert (status, problem["code"]) == (403, "admission_invalid"), problem
    assert (await get_queue(qclient, queue_settings, event))["active"] == 0


@pytest.mark.parametrize("case", ["queue lost", "join lost", "fan dropped"])
async def test_the_socket_tells_a_lost_place_apart_from_a_dropped_fan(
    qclient, queue_settings, pool, case
) -> None:
    """After a loss the socket says "lost" (the page joins again with its ticket, which
    gets the place back): the queue's state lost (a new epoch), or the fan's join lost
    alone (gone under the same epoch without a departure on record: a failover whose
    promoted replica never had it). A fan dropped from a queue that still stands, with
    its departure on record as the tick records it, hears the plain "ended" (control:
    the same disappearance)."""
    event = await queue_event(pool)
    await in_snapshot(qclient, queue_settings, event)
    await patch_queue(qclient, queue_settings, event, paused=True)
    tickets = {}
    for user in ("sock-a", "sock-b"):
        _, answer = await join(qclient, queue_settings, user, event)
        tickets[user] = answer["queue_ticket"]
    path = await socket_path(qclient, queue_settings, "sock-b", event)
    async with qclient.ws_connect(path) as ws:
        first, _ = await until(ws, lambda m: m["type"] == "status", 5)
        assert first["position"] == 2
        store = qclient.app[QUEUE_KEY].store
        if case == "queue lost":
            await lose_the_queue(qclient, event)
        else:
            assert await store.redis.zrem(store.key(event, "waiting"), "sock-b") == 1
            if case == "fan dropped":
                departed = store.key(event, "departed")
                assert await store.redis.zadd(departed, {"sock-b": time.time() * 1000}) == 1
        ended, _ = await until(ws, lambda m: m["type"] == "session_ended", 7)
    lost = case != "fan dropped"
    assert ended["reason"] == ("lost" if lost else "ended")
    if lost:
        # What each page does on "lost": join again with its ticket. Whoever comes back
        # first, each stands where they stood: sock-b, back first, is behind sock-a.
        places = {}
        for user in ("sock-b", "sock-a"):
            ticket = {"queue_ticket": tickets[user]}
            status, again = await join(qclient, queue_settings, user, event, ticket)
            assert status == 200, again
        for user in ("sock-a", "sock-b"):
            _, places[user] = await queue_status(qclient, queue_settings, user, event)
        assert (places["sock-a"]["position"], places["sock-b"]["position"]) == (1, 2), places


@pytest.mark.parametrize("regroup", [True, False], ids=["regrouping", "control: none"])
async def test_after_a_loss_the_line_regroups_before_anyone_is_admitted(
    qclient, queue_settings, pool, regroup
) -> None:
    """The recorded draw put back after a loss holds admission a few seconds (REDRAW's
    regroup_until), so a fan whose page comes back a moment late is not passed by the fan
    behind them, back first. The control takes the regrouping away: the fan behind is
    admitted before the one ahead is back. (An on-sale with its draw on record, as every
    queue that opens after its commitment has.)"""
    event = await queue_event(pool, on_sale_in=1.5)
    await in_snapshot(qclient, queue_settings, event)
    await patch_queue(
        qclient, queue_settings, event, paused=True, admit_per_minute=6000, max_active=1
    )
    store = qclient.app[QUEUE_KEY].store

    async def figures() -> dict:
        return await get_queue(qclient, queue_settings, event)

    await eventually(figures, lambda q: q["drawn"], 10, "the draw at on-sale")
    tickets = {}
    for user in ("ahead", "behind"):
        _, answer = await join(qclient, queue_settings, user, event)
        tickets[user] = {"queue_ticket": answer["queue_ticket"]}
    await patch_queue(qclient, queue_settings, event, paused=False, max_active=0)
    await lose_the_queue(qclient, event)
    status, back = await join(qclient, queue_settings, "behind", event, tickets["behind"])
    assert status == 200, back
    await eventually(figures, lambda q: q["drawn"] and q["max_active"] == 0, 10, "redrawn")
    until = await store.redis.hget(store.key(event, "state"), "regroup_until")
    assert until is not None and int(until) > time.time() * 1000  # regrouping now
    if not regroup:
        await store.set_state(event, regroup_until=0)
    await patch_queue(qclient, queue_settings, event, max_active=1)  # room for one
    await asyncio.sleep(1.5)  # the fan ahead's page is slow to come back
    status, back = await join(qclient, queue_settings, "ahead", event, tickets["ahead"])
    assert status == 200, back
    first = "ahead" if regroup else "behind"
    await wait_status(qclient, queue_settings, first, event, "admitted", timeout=10)
    figures = await get_queue(qclient, queue_settings, event)
    assert figures["active"] == 1, figures
