"""What the booking routes refuse before anything is held: a request without a token, or
with a forged one, is told 401 before anything about its input; a reserve with a bad body,
malformed JSON or a bad Idempotency-Key is 400, naming what it refuses."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.booking.support import call, fan, ticket_ids


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
