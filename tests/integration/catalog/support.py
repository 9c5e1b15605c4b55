"""Plain helpers of the catalog_api tests (the fixtures are in catalog/conftest.py).

The catalog is seeded once per run through the admin routes themselves, and indexed into a
Typesense collection of our own (alias ``<run collection>_catalog``), so search_sync's tests
in the same run never see or change it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from catalog_api.app import create_app
from tests.support import auth_header
from ticketing.config import Settings
from ticketing.db.events import fetch_event_views
from ticketing.search_index import collection_schema, make_client, to_document

VENUES = {
    "olympiastadion": ("Olympiastadion", "Berlin", 52.5147, 13.2395),
    "waldbuehne": ("Waldbühne", "Berlin", 52.5161, 13.2286),
    "barclays": ("Barclays Arena", "Hamburg", 53.5894, 9.8988),
    "olympiahalle": ("Olympiahalle", "München", 48.1753, 11.5517),
}
PERFORMERS = {
    "metallica": ("Metallica", "metal"),
    "adele": ("Adele", "pop"),
    "phil": ("Berliner Philharmoniker", "classical"),
    "aerzte": ("Die Toten Hosen", "punk"),
}
# key: (name, performer, venue, date)
EVENTS = {
    "metallica_berlin": ("M72 World Tour", "metallica", "olympiastadion", "2031-06-01T18:00:00Z"),
    "phil_berlin": ("Summer Night Classics", "phil", "waldbuehne", "2031-06-01T23:30:00Z"),
    "metallica_hamburg": ("M72 World Tour", "metallica", "barclays", "2031-06-03T18:00:00Z"),
    "adele_munich": ("Adele Live", "adele", "olympiahalle", "2031-07-10T19:00:00Z"),
    "adele_berlin": ("Adele Live", "adele", "waldbuehne", "2031-07-11T19:00:00Z"),
    "hosen_hamburg": ("Laune der Natur", "aerzte", "barclays", "2031-08-01T19:00:00Z"),
}
SEAT_MAP = {
    "sections": [
        {"name": "Floor", "rows": 2, "seats_per_row": 5, "price_cents": 12000},
        {"name": "Balcony", "rows": 1, "seats_per_row": 4, "price_cents": 6500},
    ]
}
SEATS_PER_EVENT = 14


@dataclass
class Seed:
    venues: dict[str, dict[str, Any]] = field(default_factory=dict)
    performers: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ids(self, *keys: str) -> set[int]:
        return {self.events[k]["id"] for k in keys}


def admin_headers(settings: Settings) -> dict[str, str]:
    return auth_header(settings, "root", ["admin"])


async def open_client(settings: Settings) -> TestClient:
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


async def post_ok(client: TestClient, path: str, body: dict, settings: Settings) -> dict:
    resp = await client.post(path, json=body, headers=admin_headers(settings))
    payload = await resp.json()
    assert resp.status == 201, payload
    return payload


async def seed_catalog(settings: Settings) -> Seed:
    seed = Seed()
    client = await open_client(settings)
    try:
        for key, (name, city, lat, lon) in VENUES.items():
            body = {
                "name": name,
                "city": city,
                "location": {"lat": lat, "lon": lon},
                "seat_map": SEAT_MAP,
            }
            seed.venues[key] = await post_ok(client, "/admin/venues", body, settings)
        for key, (name, genre) in PERFORMERS.items():
            body = {"name": name, "genre": genre}
            seed.performers[key] = await post_ok(client, "/admin/performers", body, settings)
        for key, (name, performer, venue, date) in EVENTS.items():
            body = {
                "name": name,
                "description": f"{name} live",
                "date": date,
                "venue_id": seed.venues[venue]["id"],
                "performer_id": seed.performers[performer]["id"],
                "on_sale_at": "2030-01-01T10:00:00Z",
                "queue_enabled": key == "metallica_berlin",
                "currency": "EUR",
            }
            seed.events[key] = await post_ok(client, "/admin/events", body, settings)
    finally:
        await client.close()
    await index_events(settings, [e["id"] for e in seed.events.values()])
    return seed


async def index_events(settings: Settings, event_ids: list[int]) -> None:
    """What search_sync does for these events: collection + alias, then upsert documents."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        views = await fetch_event_views(conn, event_ids)
    finally:
        await conn.close()
    ts = make_client(settings)
    try:
        alias = settings.typesense_collection
        try:
            await ts.aliases[alias].retrieve()
        except Exception:  # no alias yet: create the collection behind it
            await ts.collections.create(collection_schema(alias + "_v1"))
            await ts.aliases.upsert(alias, {"collection_name": alias + "_v1"})
        results = await ts.collections[alias].documents.import_(
            [to_document(v) for v in views.values()], {"action": "upsert"}
        )
        assert all(r.get("success") for r in results), results
    finally:
        await ts.api_call.aclose()


async def get_json(client: TestClient, path: str, **kwargs: Any) -> tuple[int, Any]:
    resp = await client.get(path, **kwargs)
    return resp.status, await resp.json(content_type=None)


def assert_problem(status: int, body: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert body["code"] == code, body
    assert body["status"] == expected_status
    assert {"type", "title", "detail"} <= set(body)
