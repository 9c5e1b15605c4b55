"""catalog_api read path: event list, event view, tickets, errors, health."""

from __future__ import annotations

import asyncpg
import pytest

from tests.integration.catalog.support import SEATS_PER_EVENT, Seed, assert_problem, get_json

# The catalog fixtures (settings, seeded catalog, in-process client) live in this plugin.


async def test_event_view_has_the_full_shape_and_is_cached(client, seed: Seed) -> None:
    event = seed.events["metallica_berlin"]
    resp = await client.get(f"/events/{event['id']}")
    view = await resp.json()
    assert resp.status == 200
    assert resp.headers["X-Served-From"] in ("database", "cache")
    assert view["name"] == "M72 World Tour"
    assert view["date"] == "2031-06-01T18:00:00Z"
    assert view["venue"]["name"] == "Olympiastadion"
    assert view["venue"]["city"] == "Berlin"
    assert view["venue"]["location"] == {"lat": 52.5147, "lon": 13.2395}
    assert view["performer"] == {"id": seed.performers["metallica"]["id"], "name": "Metallica"}
    assert view["availability"] == {
        "available": SEATS_PER_EVENT,
        "reserved": 0,
        "booked": 0,
        "total": SEATS_PER_EVENT,
    }
    assert view["available_tickets"] == SEATS_PER_EVENT
    assert view["min_price_cents"] == 6500
    assert view["currency"] == "EUR"
    assert view["queue_enabled"] is True
    assert view["on_sale_at"] == "2030-01-01T10:00:00Z"
    assert [(t["section"], t["price_cents"], t["total"]) for t in view["price_tiers"]] == [
        ("Floor", 12000, 10),
        ("Balcony", 6500, 4),
    ]
    again = await client.get(f"/event/{event['id']}")
    assert again.status == 200
    assert again.headers["X-Served-From"] == "cache"
    assert await again.json() == view


@pytest.mark.parametrize(
    "raw", ["99999999", "abc", "99999999999999999999", "0", "-1", "1.5", "%C3%A9"]
)
async def test_unknown_or_malformed_event_id_is_404(client, seed: Seed, raw: str) -> None:
    for path in (f"/events/{raw}", f"/event/{raw}", f"/events/{raw}/tickets"):
        status, body = await get_json(client, path)
        assert_problem(status, body, 404, "event_not_found")


async def test_list_walks_every_event_once_in_date_then_id_order(
    client, seed: Seed, catalog_settings
) -> None:
    conn = await asyncpg.connect(catalog_settings.database_url)
    try:
        expected = [
            r["id"] for r in await conn.fetch("SELECT id FROM events ORDER BY starts_at, id")
        ]
    finally:
        await conn.close()
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        status, body = await get_json(client, "/events", params=params)
        assert status == 200, body
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == (len(expected) + 1) // 2 or pages == len(expected) // 2 + 1
    assert seed.ids(*seed.events) <= set(seen)


async def test_list_items_are_event_summaries(client, seed: Seed) -> None:
    performer = seed.performers["metallica"]["id"]
    status, body = await get_json(client, "/events", params={"performer_id": str(performer)})
    assert status == 200
    assert [i["id"] for i in body["items"]] == [
        seed.events["metallica_berlin"]["id"],
        seed.events["metallica_hamburg"]["id"],
    ]
    assert body["next_cursor"] is None
    assert set(body["items"][0]) == {
        "id",
        "name",
        "date",
        "venue",
        "performer",
        "min_price_cents",
        "currency",
        "available_tickets",
        "queue_enabled",
    }
    assert body["items"][0]["venue"] == {
        "id": seed.venues["olympiastadion"]["id"],
        "name": "Olympiastadion",
        "city": "Berlin",
    }


async def test_list_filters_by_city_and_inclusive_utc_days(client, seed: Seed) -> None:
    status, body = await get_json(client, "/events", params={"city": "bERLIN", "limit": "100"})
    assert status == 200
    assert {i["venue"]["city"] for i in body["items"]} == {"Berlin"}
    assert seed.ids("metallica_berlin", "phil_berlin", "adele_berlin") <= {
        i["id"] for i in body["items"]
    }
    metallica = str(seed.performers["metallica"]["id"])
    _, from_day = await get_json(
        client, "/events", params={"performer_id": metallica, "date_from": "2031-06-02"}
    )
    assert [i["id"] for i in from_day["items"]] == [seed.events["metallica_hamburg"]["id"]]
    _, to_day = await get_json(
        client, "/events", params={"performer_id": metallica, "date_to": "2031-06-01"}
    )
    assert [i["id"] for i in to_day["items"]] == [seed.events["metallica_berlin"]["id"]]
    _, one_day = await get_json(
        client,
        "/events",
        params={"date_from": "2031-06-01", "date_to": "2031-06-01", "limit": "100"},
    )
    assert seed.ids("metallica_berlin", "phil_berlin") <= {i["id"] for i in one_day["items"]}
    assert all(i["date"].startswith("2031-06-01") for i in one_day["items"])


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "-3"},
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"date_from": "not-a-date"},
        {"date_to": "2031-13-01"},
        {"date_from": "2031-06-02", "date_to": "2031-06-01"},
        {"cursor": "!!!not-base64!!!"},
        {"cursor": "WzEsMiwzXQ"},  # [1,2,3]
        {"cursor": "WyJub3QtYS1kYXRlIiwxXQ"},  # ["not-a-date",1]
        {"performer_id": "abc"},
    ],
)
async def test_list_rejects_bad_query_parameters(client, seed: Seed, params: dict) -> None:
    status, body = await get_json(client, "/events", params=params)
    assert_problem(status, body, 400, "validation_error")


async def test_tickets_walk_the_seat_map_in_order(client, seed: Seed) -> None:
    event_id = seed.events["adele_munich"]["id"]
    seats, cursor = [], None
    while True:
        params = {"limit": "5"} | ({"cursor": cursor} if cursor else {})
        status, body = await get_json(client, f"/events/{event_id}/tickets", params=params)
        assert status == 200, body
        seats += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seats) == SEATS_PER_EVENT
    assert len({s["id"] for s in seats}) == SEATS_PER_EVENT
    assert [(s["seat"]["section"], s["seat"]["row"], s["seat"]["number"]) for s in seats[:6]] == [
        ("Floor", "A", 1),
        ("Floor", "A", 2),
        ("Floor", "A", 3),
        ("Floor", "A", 4),
        ("Floor", "A", 5),
        ("Floor", "B", 1),
    ]
    assert seats[-1] == {
        "id": seats[-1]["id"],
        "seat": {"section": "Balcony", "row": "A", "number": 4},
        "price_cents": 6500,
        "status": "available",
    }


async def test_tickets_filter_by_status_and_section(client, seed: Seed) -> None:
    event_id = seed.events["adele_munich"]["id"]
    path = f"/events/{event_id}/tickets"
    _, balcony = await get_json(client, path, params={"section": "Balcony", "limit": "500"})
    assert [s["seat"]["number"] for s in balcony["items"]] == [1, 2, 3, 4]
    assert {s["price_cents"] for s in balcony["items"]} == {6500}
    _, available = await get_json(client, path, params={"status": "available", "limit": "500"})
    assert len(available["items"]) == SEATS_PER_EVENT
    _, reserved = await get_json(client, path, params={"status": "reserved"})
    assert reserved == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "params", [{"status": "sold"}, {"limit": "501"}, {"limit": "0"}, {"cursor": "WyJ4Il0"}]
)
async def test_tickets_reject_bad_query_parameters(client, seed: Seed, params: dict) -> None:
    event_id = seed.events["adele_munich"]["id"]
    status, body = await get_json(client, f"/events/{event_id}/tickets", params=params)
    assert_problem(status, body, 400, "validation_error")


@pytest.mark.contract_exempt("asks for a path and a method that no route serves")
async def test_unknown_path_and_wrong_method_are_problem_documents(client, seed: Seed) -> None:
    resp = await client.get("/nope")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    assert (await resp.json(content_type=None))["code"] == "not_found"
    resp = await client.delete(f"/events/{seed.events['adele_munich']['id']}")
    assert resp.status == 405
    assert resp.content_type == "application/problem+json"
    assert (await resp.json(content_type=None))["code"] == "method_not_allowed"
    assert "GET" in resp.headers["Allow"]


async def test_healthz_checks_postgres_redis_and_typesense(client) -> None:
    status, body = await get_json(client, "/healthz")
    assert status == 200, body
    assert body == {
        "status": "ok",
        "components": {
            "redis": {"status": "ok", "mode": "single", "nodes": 1, "healthy": 1},
            "postgres": {"status": "ok", "mode": "primary", "nodes": 1, "healthy": 1},
            "typesense": {"status": "ok", "mode": "single", "nodes": 1, "healthy": 1},
        },
    }


async def test_metrics_count_requests_by_route_template(client, seed: Seed) -> None:
    await client.get(f"/events/{seed.events['adele_munich']['id']}")
    resp = await client.get("/metrics")
    text = await resp.text()
    assert resp.status == 200
    assert 'service="catalog_api"' in text
    assert 'route="/events/{event_id}"' in text
