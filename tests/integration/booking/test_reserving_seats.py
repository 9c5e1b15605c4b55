"""Reserving seats through the front door: explicit seats held for the fan only (all or
nothing), a single ticket id and the best adjacent seats, an unknown event (404), the
per-fan cap, admission for queue-enabled events, a stored reply for a repeated
Idempotency-Key, and reserve answers timed for the queue's auto mode."""

from __future__ import annotations

import time

from tests.integration.booking.support import SMALL, call, fan, make_event, ticket_ids
from tests.support import settings_with
from ticketing.domain.seating import Section
from waitingroom.queue.admission import issue_admission
from waitingroom.queue.runtime import QUEUE_KEY


async def test_reserve_explicit_seats_holds_them_for_the_fan_only(
    client, booking_settings, pool, event
) -> None:
    ids = await ticket_ids(pool, event)
    alice, bob = fan(booking_settings, "alice-r1"), fan(booking_settings, "bob-r1")
    status, hold, headers = await call(
        client, "POST", "/booking/reserve", alice, {"event_id": event, "ticket_ids": ids[:2]}
    )
    assert status == 201, hold
    assert headers["Content-Type"].startswith("application/json")
    assert hold["status"] == "held" and hold["event_id"] == event
    assert [t["id"] for t in hold["tickets"]] == ids[:2]
    assert hold["tickets"][0]["seat"] == {"section": "Floor", "row": "A", "number": 1}
    assert hold["amount_cents"] == 24000 and hold["currency"] == "EUR"
    assert hold["expires_at"].endswith("Z")

    status, taken, headers = await call(
        client, "POST", "/booking/reserve", bob, {"event_id": event, "ticket_ids": ids[1:3]}
    )
    assert (status, taken["code"]) == (409, "tickets_unavailable")
    assert taken["unavailable_ticket_ids"] == [ids[1]]
    assert headers["Content-Type"].startswith("application/problem+json")
    # all or nothing: the free seat of bob's request stayed free
    _, seat, _ = await call(client, "GET", f"/booking/{ids[2]}", bob)
    assert seat == {"ticket_id": ids[2], "status": "available"}

    _, mine, _ = await call(client, "GET", f"/booking/{ids[0]}", alice)
    assert mine["status"] == "reserved" and mine["hold_id"] == hold["hold_id"]
    assert mine["expires_at"] == hold["expires_at"]
    _, theirs, _ = await call(client, "GET", f"/booking/{ids[0]}", bob)
    assert theirs == {"ticket_id": ids[0], "status": "reserved"}
    admin = fan(booking_settings, "ops", ["admin"])
    _, seen, _ = await call(client, "GET", f"/booking/{ids[0]}", admin)
    assert seen["hold_id"] == hold["hold_id"]

    changed = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND payload->>'reason' = "
        "'availability'",
        str(event),
    )
    assert changed >= 1


async def test_single_ticket_id_and_best_available_adjacent(
    client, booking_settings, pool, event
) -> None:
    ids = await ticket_ids(pool, event)
    me = fan(booking_settings, "carol-r2")
    status, one, _ = await call(
        client, "POST", "/booking/reserve", me, {"event_id": event, "ticket_id": ids[1]}
    )
    assert status == 201 and [t["id"] for t in one["tickets"]] == [ids[1]]
    # Floor row A has seats 1, 3, 4, 5 free: three adjacent seats are 3-5, not 1, 3, 4
    status, best, _ = await call(
        client,
        "POST",
        "/booking/reserve",
        me,
        {"event_id": event, "quantity": 3, "section": "Floor"},
    )
    assert status == 201, best
    assert [(t["seat"]["row"], t["seat"]["number"]) for t in best["tickets"]] == [
        ("A", 3),
        ("A", 4),
        ("A", 5),
    ]
    status, balcony, _ = await call(
        client,
        "POST",
        "/booking/reserve",
        me,
        {"event_id": event, "quantity": 4, "section": "Balcony"},
    )
    assert status == 201 and balcony["amount_cents"] == 4 * 6500
    status, none, _ = await call(
        client,
        "POST",
        "/booking/reserve",
        fan(booking_settings, "dan-r2"),
        {"event_id": event, "quantity": 1, "section": "Balcony"},
    )
    assert (status, none["code"]) == (409, "tickets_unavailable")


async def test_unknown_or_malformed_event_is_404(client, booking_settings) -> None:
    me = fan(booking_settings, "erin")
    for event_id in (999_999_999, -4, 0):
        status, problem, _ = await call(
            client, "POST", "/booking/reserve", me, {"event_id": event_id, "quantity": 1}
        )
        assert (status, problem["code"]) == (404, "event_not_found"), event_id


async def test_per_user_cap_counts_held_tickets(client, booking_settings, pool) -> None:
    event = await make_event(pool, [Section("Floor", 2, 10, 1000)])
    me = fan(booking_settings, "greedy")
    status, _, _ = await call(
        client, "POST", "/booking/reserve", me, {"event_id": event, "quantity": 6}
    )
    assert status == 201
    status, problem, _ = await call(
        client, "POST", "/booking/reserve", me, {"event_id": event, "quantity": 3}
    )
    assert (status, problem["code"]) == (422, "limit_exceeded")
    status, _, _ = await call(
        client, "POST", "/booking/reserve", me, {"event_id": event, "quantity": 2}
    )
    assert status == 201


async def test_admission_for_queue_enabled_events(client, booking_settings, pool) -> None:
    event = await make_event(pool, SMALL, queue_enabled=True)
    other = await make_event(pool, SMALL)
    me = fan(booking_settings, "queued")
    body = {"event_id": event, "quantity": 1}
    status, problem, _ = await call(client, "POST", "/booking/reserve", me, body)
    assert (status, problem["code"]) == (403, "admission_required")
    for token in (
        issue_admission(booking_settings, "someone-else", event, 60),
        issue_admission(booking_settings, "queued", other, 60),
        issue_admission(booking_settings, "queued", event, -60),
        issue_admission(
            settings_with(booking_settings, admission_secret="x" * 40), "queued", event, 60
        ),
        "not-a-jwt",
    ):
        status, problem, _ = await call(
            client, "POST", "/booking/reserve", {**me, "X-Admission-Token": token}, body
        )
        assert (status, problem["code"]) == (403, "admission_invalid")
    token = issue_admission(booking_settings, "queued", event, 60)
    # A well-signed token whose session the waiting room does not know: refused.
    status, problem, _ = await call(
        client, "POST", "/booking/reserve", {**me, "X-Admission-Token": token}, body
    )
    assert (status, problem["code"]) == (403, "admission_invalid")
    store = client.app[QUEUE_KEY].store
    await store.redis.zadd(store.key(event, "active"), {"queued": (time.time() + 60) * 1000})
    status, hold, _ = await call(
        client, "POST", "/booking/reserve", {**me, "X-Admission-Token": token}, body
    )
    assert status == 201, hold


async def test_idempotency_key_returns_the_stored_reply(
    client, booking_settings, pool, event
) -> None:
    headers = {**fan(booking_settings, "retry"), "Idempotency-Key": "k-1"}
    body = {"event_id": event, "quantity": 2}
    replies = [await call(client, "POST", "/booking/reserve", headers, body) for _ in range(3)]
    assert {r[0] for r in replies} == {201}
    assert len({r[1]["hold_id"] for r in replies}) == 1
    holds = await pool.fetchval(
        "SELECT count(*) FROM holds WHERE event_id = $1 AND user_id = 'retry'", event
    )
    assert holds == 1
    # the same key from another fan is another request
    status, other, _ = await call(
        client,
        "POST",
        "/booking/reserve",
        {**fan(booking_settings, "retry2"), "Idempotency-Key": "k-1"},
        body,
    )
    assert status == 201 and other["hold_id"] != replies[0][1]["hold_id"]


async def test_reserve_answers_are_timed_for_auto_mode_and_other_routes_are_not(
    client, booking_settings, event
) -> None:
    from waitingroom.queue.booking_health import RESERVE_LATENCY_KEY

    latency = client.server.app[RESERVE_LATENCY_KEY]
    _, before = latency.average()
    headers = fan(booking_settings, "timed")
    status, _, _ = await call(
        client, "POST", "/booking/reserve", headers, {"event_id": event, "quantity": 1}
    )
    assert status == 201
    await call(client, "GET", "/me/bookings", headers)
    average_ms, after = latency.average()
    assert after == before + 1 and average_ms > 0
