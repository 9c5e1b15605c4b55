"""Holds and bookings after the reserve: a release frees the seats at once (the owner's or
an admin's), an expired hold is never honoured, bookings are shown to their owner and
admins only (one by one and a page at a time), and an unknown ticket is 404."""

from __future__ import annotations

import uuid

from tests.integration.booking.support import call, fan, ticket_ids


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
