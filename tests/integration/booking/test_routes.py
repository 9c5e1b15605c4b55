"""Every booking route, status and error code of the contract (confirm and webhooks are the
payments tests'), through the waitingroom app and a booking worker over RabbitMQ."""

from __future__ import annotations

import json
import time
import uuid

import aio_pika
import asyncpg
import pytest

from tests.integration.booking.support import call, fan, make_event, open_client, ticket_ids
from tests.support import eventually, free_port, settings_with
from ticketing.domain.seating import Section
from ticketing.messages import (
    BOOKING_DEAD_LETTER_QUEUE,
    BOOKING_EXCHANGE,
    SIGNATURE_HEADER,
    command_signature,
)
from waitingroom.queue.admission import issue_admission
from waitingroom.queue.runtime import QUEUE_KEY

SMALL = [Section("Floor", 2, 5, 12000), Section("Balcony", 1, 4, 6500)]


@pytest.fixture
async def event(pool: asyncpg.Pool) -> int:
    return await make_event(pool, SMALL)


async def test_every_route_needs_a_token(client) -> None:
    for method, path in (
        ("POST", "/booking/reserve"),
        ("POST", "/booking/confirm"),
        ("DELETE", f"/booking/holds/{uuid.uuid4()}"),
        ("GET", "/booking/1"),
        ("GET", f"/bookings/{uuid.uuid4()}"),
        ("GET", "/me/bookings"),
    ):
        status, body, _ = await call(client, method, path, {}, {} if method == "POST" else None)
        assert (status, body["code"]) == (401, "unauthorized"), path


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


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"event_id": "1", "quantity": 1},
        {"event_id": 1},
        {"event_id": 1, "quantity": 0},
        {"event_id": 1, "quantity": True},
        {"event_id": 1, "ticket_ids": []},
        {"event_id": 1, "ticket_ids": [1, 1]},
        {"event_id": 1, "ticket_ids": ["1"]},
        {"event_id": 1, "ticket_ids": [1], "quantity": 1},
        {"event_id": 1, "quantity": 1, "section": 5},
        {"event_id": 1, "quantity": 1, "seat": "A1"},
        {"event_id": 1, "quantity": None},
        {"event_id": 1, "quantity": 1, "section": ""},
        {"event_id": 1, "ticket_ids": [1], "section": None},
        {"event_id": 1, "ticket_ids": [0]},
        {"event_id": 1.5, "quantity": 1},
        {"event_id": 2**64, "quantity": 1},
        [1, 2],
    ],
)
async def test_reserve_refuses_invalid_input(client, booking_settings, body) -> None:
    status, problem, _ = await call(
        client, "POST", "/booking/reserve", fan(booking_settings, "val"), body
    )
    assert (status, problem["code"]) == (400, "validation_error"), body


async def test_reserve_malformed_json_and_bad_idempotency_key(client, booking_settings) -> None:
    headers = fan(booking_settings, "val2")
    async with client.post("/booking/reserve", data=b"{nope", headers=headers) as resp:
        assert resp.status == 400
    status, problem, _ = await call(
        client,
        "POST",
        "/booking/reserve",
        {**headers, "Idempotency-Key": "x" * 300},
        {"event_id": 1, "quantity": 1},
    )
    assert (status, problem["code"]) == (400, "validation_error")
    message = "Idempotency-Key must be 1 to 255 printable ASCII characters."
    assert problem["errors"] == [{"in": "header", "name": "Idempotency-Key", "message": message}]
    assert problem["parameter"] == "Idempotency-Key"


@pytest.mark.parametrize(
    ("asked", "name", "message"),
    [
        (lambda ids: {"quantity": 1, "seat": "A1"}, "seat", "seat is not a known field."),
        (
            lambda ids: {"quantity": 1, "section": "Flo\x00or"},
            "section",
            "section must not contain NUL characters.",
        ),
        (
            lambda ids: {"ticket_ids": ids[:2], "quantity": 2},
            "",
            "Send exactly one of ticket_ids, ticket_id or quantity.",
        ),
    ],
    ids=["unknown field", "NUL in section", "ticket_ids and quantity"],
)
async def test_a_refused_reserve_names_what_it_refuses_and_holds_nothing(
    client, booking_settings, pool, event, asked, name, message
) -> None:
    user = f"refused-{uuid.uuid4().hex[:8]}"
    body = {"event_id": event, **asked(await ticket_ids(pool, event))}
    status, problem, _ = await call(
        client, "POST", "/booking/reserve", fan(booking_settings, user), body
    )
    assert (status, problem["code"]) == (400, "validation_error"), problem
    assert problem["detail"] == message
    assert problem["errors"] == [{"in": "body", "name": name, "message": message}]
    assert problem.get("field") == (name or None)
    assert await pool.fetchval("SELECT count(*) FROM holds WHERE user_id = $1", user) == 0
    taken = await pool.fetchval(
        "SELECT count(*) FROM tickets WHERE event_id = $1 AND status <> 'available'", event
    )
    assert taken == 0


async def test_an_anonymous_request_is_told_401_before_anything_about_its_input(
    client, booking_settings
) -> None:
    anonymous = {"Content-Type": "application/json"}
    forged = {**anonymous, "Authorization": "Bearer not-a-token"}
    for method, path, data in (
        ("POST", "/booking/reserve", b"{nope"),
        ("POST", "/booking/reserve", b'{"event_id": 1, "quantity": 1, "seat": "A1"}'),
        ("POST", "/booking/confirm", b'{"hold_id": 5}'),
        ("GET", "/me/bookings?limit=0", None),
        ("DELETE", "/booking/holds/not-a-uuid", None),
        ("GET", "/booking/abc", None),
    ):
        for headers, code in ((anonymous, "unauthorized"), (forged, "invalid_token")):
            async with client.request(method, path, data=data, headers=headers) as resp:
                problem = await resp.json(content_type=None)
                assert (resp.status, problem["code"]) == (401, code), (path, data, problem)


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


async def test_release_frees_the_seats_at_once(client, booking_settings, pool, event) -> None:
    ids = await ticket_ids(pool, event)
    owner, other = fan(booking_settings, "rel-owner"), fan(booking_settings, "rel-other")
    _, hold, _ = await call(
        client, "POST", "/booking/reserve", owner, {"event_id": event, "ticket_ids": ids[:3]}
    )
    path = f"/booking/holds/{hold['hold_id']}"
    status, problem, _ = await call(client, "DELETE", path, other)
    assert (status, problem["code"]) == (403, "not_your_hold")
    for missing in (f"/booking/holds/{uuid.uuid4()}", "/booking/holds/not-a-uuid"):
        status, problem, _ = await call(client, "DELETE", missing, owner)
        assert (status, problem["code"]) == (404, "hold_not_found")
    status, body, _ = await call(client, "DELETE", path, owner)
    assert (status, body) == (204, None)
    status, taken, _ = await call(
        client, "POST", "/booking/reserve", other, {"event_id": event, "ticket_ids": ids[:3]}
    )
    assert status == 201, taken
    # an admin may release anyone's hold
    status, _, _ = await call(
        client,
        "DELETE",
        f"/booking/holds/{taken['hold_id']}",
        fan(booking_settings, "ops", ["admin"]),
    )
    assert status == 204


async def test_expired_hold_is_never_honoured(client, booking_settings, pool, event) -> None:
    ids = await ticket_ids(pool, event)
    me, next_fan = fan(booking_settings, "late"), fan(booking_settings, "next")
    _, hold, _ = await call(
        client, "POST", "/booking/reserve", me, {"event_id": event, "ticket_ids": ids[:2]}
    )
    # Time passes beyond the TTL (the subprocess test runs a real 1 s TTL).
    await pool.execute(
        "UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(hold["hold_id"]),
    )
    _, seat, _ = await call(client, "GET", f"/booking/{ids[0]}", me)
    assert seat == {"ticket_id": ids[0], "status": "available"}
    status, problem, _ = await call(client, "DELETE", f"/booking/holds/{hold['hold_id']}", me)
    assert (status, problem["code"]) == (409, "hold_expired")
    status, _, _ = await call(
        client, "POST", "/booking/reserve", next_fan, {"event_id": event, "ticket_ids": ids[:2]}
    )
    assert status == 201
    assert (
        await pool.fetchval("SELECT status FROM holds WHERE id = $1", uuid.UUID(hold["hold_id"]))
        == "expired"
    )


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


async def test_bookings_are_shown_to_their_owner_and_admins(
    client, booking_settings, pool, event
) -> None:
    ids = await ticket_ids(pool, event)
    booking_ids = []
    for i in range(3):
        hold_id, booking_id = uuid.uuid4(), uuid.uuid4()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO holds (id, event_id, user_id, status, amount_cents, currency,
                                      expires_at, ticket_ids)
                   VALUES ($1, $2, 'routes-buyer', 'confirmed', 12000, 'EUR', now(), $3)""",
                hold_id,
                event,
                [ids[i]],
            )
            await conn.execute(
                """INSERT INTO bookings (id, hold_id, event_id, user_id, status, amount_cents,
                                         currency, payment_intent_id, created_at)
                   VALUES ($1, $2, $3, 'routes-buyer', 'confirmed', 12000, 'EUR', 'pi_x',
                           now() - make_interval(secs => $4))""",
                booking_id,
                hold_id,
                event,
                float(10 - i),
            )
            await conn.execute(
                "UPDATE tickets SET status = 'booked', hold_id = $1, booking_id = $2 WHERE id = $3",
                hold_id,
                booking_id,
                ids[i],
            )
        booking_ids.append(str(booking_id))
    buyer = fan(booking_settings, "routes-buyer")
    status, booking, _ = await call(client, "GET", f"/bookings/{booking_ids[0]}", buyer)
    assert status == 200
    assert booking["status"] == "confirmed" and booking["payment_intent_id"] == "pi_x"
    assert [t["id"] for t in booking["tickets"]] == [ids[0]]
    for path, who in (
        (f"/bookings/{booking_ids[0]}", fan(booking_settings, "snoop")),
        (f"/bookings/{uuid.uuid4()}", buyer),
        ("/bookings/nope", buyer),
    ):
        status, problem, _ = await call(client, "GET", path, who)
        assert (status, problem["code"]) == (404, "booking_not_found")
    status, _, _ = await call(
        client, "GET", f"/bookings/{booking_ids[0]}", fan(booking_settings, "ops", ["admin"])
    )
    assert status == 200
    _, seat, _ = await call(client, "GET", f"/booking/{ids[0]}", buyer)
    assert seat == {"ticket_id": ids[0], "status": "booked", "booking_id": booking_ids[0]}

    status, page, _ = await call(client, "GET", "/me/bookings?limit=2", buyer)
    assert status == 200
    assert [b["booking_id"] for b in page["items"]] == booking_ids[::-1][:2]
    _, rest, _ = await call(
        client, "GET", f"/me/bookings?limit=2&cursor={page['next_cursor']}", buyer
    )
    assert [b["booking_id"] for b in rest["items"]] == [booking_ids[0]]
    assert rest["next_cursor"] is None
    _, empty, _ = await call(client, "GET", "/me/bookings", fan(booking_settings, "nobody"))
    assert empty == {"items": [], "next_cursor": None}
    for query in ("limit=0", "limit=x", "cursor=%%%"):
        status, problem, _ = await call(client, "GET", f"/me/bookings?{query}", buyer)
        assert (status, problem["code"]) == (400, "validation_error"), query


async def test_unknown_ticket_is_404(client, booking_settings) -> None:
    for path in ("/booking/999999999", "/booking/abc", "/booking/0"):
        status, problem, _ = await call(client, "GET", path, fan(booking_settings, "x"))
        assert (status, problem["code"]) == (404, "ticket_not_found")


async def test_broker_down_answers_503_at_once(booking_settings) -> None:
    down = settings_with(booking_settings, amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    from aiohttp.test_utils import TestClient, TestServer

    from waitingroom.app import create_app

    client = TestClient(TestServer(create_app(down)))
    await client.start_server()
    try:
        started = time.monotonic()
        status, problem, headers = await call(
            client, "POST", "/booking/reserve", fan(down, "f"), {"event_id": 1, "quantity": 1}
        )
        assert (status, problem["code"]) == (503, "backend_unavailable")
        assert headers["Retry-After"] and time.monotonic() - started < 1
    finally:
        await client.close()


async def test_no_worker_answer_in_time_is_503(booking_settings, pool, worker) -> None:
    # 64 partitions at the front door: events in partitions >= 8 reach queues no worker
    # consumes (the workers run 8), so their commands wait and the call times out.
    slow = settings_with(booking_settings, booking_partitions=64, booking_rpc_timeout_seconds=0.5)
    event = await make_event(pool, SMALL)
    while event % 64 < booking_settings.booking_partitions:
        event = await make_event(pool, SMALL)
    client = await open_client(slow)
    try:
        status, problem, headers = await call(
            client, "POST", "/booking/reserve", fan(slow, "w"), {"event_id": event, "quantity": 1}
        )
        assert (status, problem["code"]) == (503, "backend_unavailable")
        assert "Retry-After" in headers
    finally:
        await client.close()


async def test_poison_messages_go_to_the_dead_letter_queue(booking_settings, worker) -> None:
    connection = await aio_pika.connect(booking_settings.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(BOOKING_EXCHANGE)
        for body in (b"{not json", json.dumps({"type": "booking.reserve", "v": 99}).encode()):
            # Signed, as the front door would: what is read from a signed message is checked.
            signed = {SIGNATURE_HEADER: command_signature(booking_settings.command_secret, body)}
            await exchange.publish(
                aio_pika.Message(body, message_id="poison", headers=signed), routing_key="0"
            )
        dead = await channel.declare_queue(BOOKING_DEAD_LETTER_QUEUE, durable=True)

        async def fetch():
            return await dead.get(no_ack=True, fail=False)

        reasons = []
        for _ in range(2):
            message = await eventually(fetch, lambda m: m is not None, 10, "a dead letter")
            reasons.append(message.headers["x-booking-error"])
        assert any("bad JSON" in r for r in reasons)
        assert any("unsupported version" in r for r in reasons)
    finally:
        await connection.close()


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
