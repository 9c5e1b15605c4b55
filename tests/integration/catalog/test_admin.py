"""catalog_api admin writes: auth, strict validation (nothing written), tickets, outbox."""

from __future__ import annotations

import copy
import json

import asyncpg
import pytest

from tests.integration.catalog.support import (
    SEAT_MAP,
    Seed,
    admin_headers,
    assert_problem,
    get_json,
)
from tests.support import auth_header
from ticketing.domain.seating import row_label

VENUE = {
    "name": "Test Hall",
    "city": "Leipzig",
    "location": {"lat": 51.34, "lon": 12.37},
    "seat_map": SEAT_MAP,
}


@pytest.fixture
async def db(catalog_settings):
    conn = await asyncpg.connect(catalog_settings.database_url)
    yield conn
    await conn.close()


async def counts(db) -> dict[str, int]:
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM venues) AS venues, (SELECT count(*) FROM performers)"
        " AS performers, (SELECT count(*) FROM events) AS events,"
        " (SELECT count(*) FROM tickets) AS tickets, (SELECT count(*) FROM outbox) AS outbox"
    )
    return dict(row)


def event_body(seed: Seed, **changes) -> dict:
    body = {
        "name": "Admin Test Night",
        "description": "A night to test admins.",
        "date": "2032-03-01T20:00:00+01:00",
        "venue_id": seed.venues["olympiahalle"]["id"],
        "performer_id": seed.performers["adele"]["id"],
        "queue_enabled": False,
        "currency": "EUR",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_row_labels_run_like_spreadsheet_columns() -> None:
    assert [row_label(i) for i in (0, 1, 25, 26, 27, 51, 52, 199)] == [
        "A",
        "B",
        "Z",
        "AA",
        "AB",
        "AZ",
        "BA",
        "GR",
    ]


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/admin/venues", "post"),
        ("/admin/performers", "post"),
        ("/admin/events", "post"),
        ("/admin/events/1", "patch"),
    ],
)
async def test_admin_routes_need_an_admin_token(client, catalog_settings, path, method) -> None:
    send = getattr(client, method)
    resp = await send(path, json={})
    assert_problem(resp.status, await resp.json(content_type=None), 401, "unauthorized")
    resp = await send(path, json={}, headers={"Authorization": "Bearer not.a.jwt"})
    assert_problem(resp.status, await resp.json(content_type=None), 401, "invalid_token")
    resp = await send(path, json={}, headers=auth_header(catalog_settings, "bob", ["fan"]))
    assert_problem(resp.status, await resp.json(content_type=None), 403, "forbidden")


async def test_create_venue_and_performer(client, catalog_settings, db) -> None:
    resp = await client.post("/admin/venues", json=VENUE, headers=admin_headers(catalog_settings))
    venue = await resp.json()
    assert resp.status == 201, venue
    assert venue == {**VENUE, "id": venue["id"], "capacity": 14}
    stored = await db.fetchrow("SELECT city, capacity FROM venues WHERE id = $1", venue["id"])
    assert dict(stored) == {"city": "Leipzig", "capacity": 14}
    resp = await client.post(
        "/admin/performers",
        json={"name": "  Tokio Hotel ", "genre": "pop"},
        headers=admin_headers(catalog_settings),
    )
    performer = await resp.json()
    assert resp.status == 201, performer
    assert performer == {
        "id": performer["id"],
        "name": "Tokio Hotel",
        "genre": "pop",
        "description": "",
    }


def _bad_venues() -> list[dict]:
    def venue(**changes):
        body = copy.deepcopy(VENUE)
        body.update(changes)
        return body

    section = {"name": "S", "rows": 1, "seats_per_row": 1, "price_cents": 0}
    return [
        venue(name=""),
        venue(name=5),
        venue(city=None),
        venue(location={"lat": 91, "lon": 0}),
        venue(location={"lat": "52", "lon": 13}),
        venue(location={"lat": True, "lon": 13}),
        venue(seat_map={"sections": []}),
        venue(seat_map={"sections": [section] * 51}),
        venue(seat_map={"sections": [{**section, "rows": 201}]}),
        venue(seat_map={"sections": [{**section, "seats_per_row": 0}]}),
        venue(seat_map={"sections": [{**section, "price_cents": -1}]}),
        venue(seat_map={"sections": [{**section, "price_cents": 1.5}]}),
        venue(seat_map={"sections": [section, section]}),  # duplicate names
        venue(
            seat_map={
                "sections": [
                    {**section, "name": "A", "rows": 200, "seats_per_row": 500},
                    {**section, "name": "B", "rows": 1},
                ]
            }
        ),  # 100,001 seats
        venue(extra="field"),
        [VENUE],
    ]


@pytest.mark.parametrize("body", _bad_venues())
async def test_invalid_venue_is_400_and_writes_nothing(client, catalog_settings, db, body) -> None:
    before = await counts(db)
    resp = await client.post("/admin/venues", json=body, headers=admin_headers(catalog_settings))
    assert_problem(resp.status, await resp.json(content_type=None), 400, "validation_error")
    assert await counts(db) == before


async def test_malformed_json_and_oversized_bodies(client, catalog_settings, db) -> None:
    headers = admin_headers(catalog_settings) | {"Content-Type": "application/json"}
    before = await counts(db)
    resp = await client.post("/admin/performers", data="{nope", headers=headers)
    assert_problem(resp.status, await resp.json(content_type=None), 400, "validation_error")
    big = json.dumps({"name": "x", "description": "y" * (catalog_settings.max_body_bytes + 1)})
    resp = await client.post("/admin/performers", data=big, headers=headers)
    assert_problem(resp.status, await resp.json(content_type=None), 413, "payload_too_large")
    assert await counts(db) == before


async def test_create_event_makes_one_ticket_per_seat_and_an_outbox_record(
    client, catalog_settings, seed: Seed, db
) -> None:
    resp = await client.post(
        "/admin/events",
        json=event_body(seed, on_sale_at="2032-01-01T09:00:00Z"),
        headers=admin_headers(catalog_settings),
    )
    view = await resp.json()
    assert resp.status == 201, view
    assert view["date"] == "2032-03-01T19:00:00Z"  # stored and shown in UTC
    assert view["on_sale_at"] == "2032-01-01T09:00:00Z"
    assert view["availability"]["total"] == 14
    assert view["min_price_cents"] == 6500
    tickets = await db.fetch(
        'SELECT section, "row", number, price_cents, status::text FROM tickets'
        " WHERE event_id = $1 ORDER BY id",
        view["id"],
    )
    assert [tuple(t) for t in tickets[:6]] == [
        ("Floor", "A", n, 12000, "available") for n in range(1, 6)
    ] + [("Floor", "B", 1, 12000, "available")]
    assert [tuple(t)[:4] for t in tickets[10:]] == [("Balcony", "A", n, 6500) for n in (1, 2, 3, 4)]
    outbox = await db.fetch(
        "SELECT payload FROM outbox WHERE aggregate_id = $1 ORDER BY id", str(view["id"])
    )
    assert [json.loads(r["payload"])["reason"] for r in outbox] == ["created"]
    status, fetched = await get_json(client, f"/events/{view['id']}")
    assert status == 200 and fetched == view


@pytest.mark.parametrize(
    "changes",
    [
        {"date": "2032-03-01T20:00:00"},  # no offset
        {"date": "tomorrow"},
        {"currency": "eur"},
        {"currency": "EURO"},
        {"queue_enabled": "yes"},
        {"venue_id": "1"},
        {"performer_id": 0},
        {"name": ""},
        {"description": None},
        {"on_sale_at": "2032-04-01T00:00:00Z"},  # after the date
        {"surprise": 1},
    ],
)
async def test_invalid_event_is_400_and_writes_nothing(
    client, catalog_settings, seed: Seed, db, changes
) -> None:
    body = event_body(seed)
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not None}
    before = await counts(db)
    resp = await client.post("/admin/events", json=body, headers=admin_headers(catalog_settings))
    assert_problem(resp.status, await resp.json(content_type=None), 400, "validation_error")
    assert await counts(db) == before


async def test_unknown_venue_or_performer_is_404_and_writes_nothing(
    client, catalog_settings, seed: Seed, db
) -> None:
    before = await counts(db)
    headers = admin_headers(catalog_settings)
    resp = await client.post(
        "/admin/events", json=event_body(seed, venue_id=987654321), headers=headers
    )
    assert_problem(resp.status, await resp.json(content_type=None), 404, "venue_not_found")
    resp = await client.post(
        "/admin/events", json=event_body(seed, performer_id=987654321), headers=headers
    )
    assert_problem(resp.status, await resp.json(content_type=None), 404, "performer_not_found")
    assert await counts(db) == before


async def test_patch_edits_invalidates_the_cache_and_records_the_change(
    client, catalog_settings, seed: Seed, db
) -> None:
    headers = admin_headers(catalog_settings)
    resp = await client.post("/admin/events", json=event_body(seed), headers=headers)
    event_id = (await resp.json())["id"]
    warm = await client.get(f"/events/{event_id}")
    assert warm.status == 200
    assert (await client.get(f"/events/{event_id}")).headers["X-Served-From"] == "cache"

    resp = await client.patch(
        f"/admin/events/{event_id}",
        json={
            "name": "Renamed Night",
            "queue_enabled": True,
            "currency": "CHF",
            "performer_id": seed.performers["phil"]["id"],
        },
        headers=headers,
    )
    view = await resp.json()
    assert resp.status == 200, view
    assert (view["name"], view["queue_enabled"], view["currency"]) == ("Renamed Night", True, "CHF")
    assert view["performer"]["name"] == "Berliner Philharmoniker"
    after = await client.get(f"/events/{event_id}")
    assert (await after.json())["name"] == "Renamed Night"
    reasons = [
        json.loads(r["payload"])["reason"]
        for r in await db.fetch(
            "SELECT payload FROM outbox WHERE aggregate_id = $1 ORDER BY id", str(event_id)
        )
    ]
    assert reasons == ["created", "edited"]


async def test_patch_errors(client, catalog_settings, seed: Seed, db) -> None:
    headers = admin_headers(catalog_settings)
    event_id = seed.events["hosen_hamburg"]["id"]
    cases = [
        ("/admin/events/987654321", {"name": "x"}, 404, "event_not_found"),
        ("/admin/events/abc", {"name": "x"}, 404, "event_not_found"),
        (f"/admin/events/{event_id}", {}, 400, "validation_error"),
        (f"/admin/events/{event_id}", {"venue_id": 1}, 400, "validation_error"),
        (
            f"/admin/events/{event_id}",
            {"on_sale_at": "2040-01-01T00:00:00Z"},
            400,
            "validation_error",
        ),
        (f"/admin/events/{event_id}", {"performer_id": 987654321}, 404, "performer_not_found"),
    ]
    before = await counts(db)
    for path, body, status, code in cases:
        resp = await client.patch(path, json=body, headers=headers)
        assert_problem(resp.status, await resp.json(content_type=None), status, code)
    assert await counts(db) == before
    status, view = await get_json(client, f"/events/{event_id}")
    assert view["name"] == "Laune der Natur"


async def test_currency_is_locked_once_a_ticket_is_held(client, catalog_settings, seed, db) -> None:
    headers = admin_headers(catalog_settings)
    resp = await client.post("/admin/events", json=event_body(seed), headers=headers)
    event_id = (await resp.json())["id"]
    hold_id = await db.fetchval(
        "INSERT INTO holds (id, event_id, user_id, status, amount_cents, currency, expires_at)"
        " VALUES (gen_random_uuid(), $1, 'alice', 'held', 12000, 'EUR', now() + interval '10m')"
        " RETURNING id",
        event_id,
    )
    await db.execute(
        "UPDATE tickets SET status = 'reserved', hold_id = $2"
        " WHERE id = (SELECT min(id) FROM tickets WHERE event_id = $1)",
        event_id,
        hold_id,
    )
    resp = await client.patch(
        f"/admin/events/{event_id}", json={"currency": "USD"}, headers=headers
    )
    assert_problem(resp.status, await resp.json(content_type=None), 409, "currency_locked")
    resp = await client.patch(
        f"/admin/events/{event_id}", json={"name": "Still fine"}, headers=headers
    )
    view = await resp.json()
    assert resp.status == 200
    assert (view["currency"], view["availability"]["reserved"]) == ("EUR", 1)
