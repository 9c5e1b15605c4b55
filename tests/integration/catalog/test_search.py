"""catalog_api /search on a real Typesense, and its Postgres fallback."""

from __future__ import annotations

import time

import pytest

from tests.integration.catalog.support import Seed, assert_problem, get_json, open_client
from tests.support import free_port, settings_with
from ticketing.metrics import DEGRADED_RESPONSES, DEPENDENCY_ERRORS


async def search_ids(client, **params: str) -> list[int]:
    status, body = await get_json(client, "/search", params=params)
    assert status == 200, body
    return [hit["id"] for hit in body["hits"]]


async def test_term_is_typo_tolerant_and_matches_by_prefix(client, seed: Seed) -> None:
    resp = await client.get("/search", params={"term": "Metalica"})
    assert resp.status == 200
    assert "X-Search-Degraded" not in resp.headers
    metallica = seed.ids("metallica_berlin", "metallica_hamburg")
    # "Metallica" is the performer; the events are called "M72 World Tour".
    assert set(await search_ids(client, term="Metalica")) == metallica
    assert set(await search_ids(client, term="Metal")) == metallica
    assert set(await search_ids(client, term="metallica")) == metallica


async def test_term_matches_event_performer_and_venue_names(client, seed: Seed) -> None:
    assert set(await search_ids(client, term="M72")) == seed.ids(
        "metallica_berlin", "metallica_hamburg"
    )
    assert set(await search_ids(client, term="Philharmoniker")) == seed.ids("phil_berlin")
    assert set(await search_ids(client, term="Waldbühne")) == seed.ids(
        "phil_berlin", "adele_berlin"
    )
    assert await search_ids(client, term="Zzyzx Quartet") == []


async def test_location_matches_the_city_despite_typos(client, seed: Seed) -> None:
    berlin = seed.ids("metallica_berlin", "phil_berlin", "adele_berlin")
    assert set(await search_ids(client, location="Berln")) == berlin
    assert set(await search_ids(client, location="berlin")) == berlin
    assert set(await search_ids(client, location="Hamburg", term="Metallica")) == seed.ids(
        "metallica_hamburg"
    )
    assert await search_ids(client, location="Qwxyzpt") == []


async def test_date_is_one_utc_day_and_ranges_are_inclusive(client, seed: Seed) -> None:
    # phil_berlin starts 23:30 UTC on June 1st: still that UTC day.
    assert set(await search_ids(client, date="2031-06-01")) == seed.ids(
        "metallica_berlin", "phil_berlin"
    )
    assert set(await search_ids(client, date_from="2031-06-01", date_to="2031-06-03")) == seed.ids(
        "metallica_berlin", "phil_berlin", "metallica_hamburg"
    )
    assert set(await search_ids(client, date_from="2031-07-11")) == seed.ids(
        "adele_berlin", "hosen_hamburg"
    )


async def test_near_filters_by_distance(client, seed: Seed) -> None:
    # Hamburg city centre; the arena is ~9 km away, Berlin ~250 km.
    hamburg = seed.ids("metallica_hamburg", "hosen_hamburg")
    assert set(await search_ids(client, near="53.55,9.99", radius_km="30")) == hamburg
    assert await search_ids(client, near="53.55,9.99", radius_km="2") == []


async def test_results_have_summaries_facets_and_pages(client, seed: Seed) -> None:
    status, body = await get_json(client, "/search", params={"per_page": "4"})
    assert status == 200
    assert body["found"] == len(seed.events)
    assert body["page"] == 1
    assert len(body["hits"]) == 4
    # Without a term, hits come in date order.
    assert [h["date"] for h in body["hits"]] == sorted(h["date"] for h in body["hits"])
    assert body["facets"]["city"] == [
        {"value": "Berlin", "count": 3},
        {"value": "Hamburg", "count": 2},
        {"value": "München", "count": 1},
    ]
    hit = body["hits"][0]
    assert hit == {
        "id": seed.events["metallica_berlin"]["id"],
        "name": "M72 World Tour",
        "date": "2031-06-01T18:00:00Z",
        "venue": {
            "id": seed.venues["olympiastadion"]["id"],
            "name": "Olympiastadion",
            "city": "Berlin",
        },
        "performer": {"id": seed.performers["metallica"]["id"], "name": "Metallica"},
        "min_price_cents": 6500,
        "currency": "EUR",
        "available_tickets": 14,
        "queue_enabled": True,
    }
    _, page2 = await get_json(client, "/search", params={"per_page": "4", "page": "2"})
    assert page2["page"] == 2
    assert len(page2["hits"]) == len(seed.events) - 4
    assert not {h["id"] for h in page2["hits"]} & {h["id"] for h in body["hits"]}


@pytest.mark.parametrize(
    "params",
    [
        {"date": "not-a-date"},
        {"date_from": "2031-06-02", "date_to": "2031-06-01"},
        {"page": "0"},
        {"per_page": "101"},
        {"per_page": "-3"},
        {"near": "53.5,9.9"},
        {"radius_km": "5"},
        {"near": "95,9", "radius_km": "5"},
        {"near": "abc", "radius_km": "5"},
        {"near": "53.5,9.9", "radius_km": "0"},
        {"near": "53.5,9.9", "radius_km": "nan"},
        {"term": "x" * 201},
    ],
)
async def test_search_rejects_bad_parameters(client, params: dict) -> None:
    status, body = await get_json(client, "/search", params=params)
    assert_problem(status, body, 400, "validation_error")


def _degraded_count() -> float:
    return DEGRADED_RESPONSES.labels("catalog_api", "/search", "postgres")._value.get()


def _typesense_errors() -> float:
    return DEPENDENCY_ERRORS.labels("catalog_api", "typesense")._value.get()


async def test_search_falls_back_to_postgres_fast_when_typesense_is_down(
    catalog_settings, seed: Seed
) -> None:
    down = settings_with(catalog_settings, typesense_url=f"http://127.0.0.1:{free_port()}")
    client = await open_client(down)
    try:
        before, errors_before = _degraded_count(), _typesense_errors()
        started = time.monotonic()
        resp = await client.get("/search", params={"term": "Metalica"})
        elapsed = time.monotonic() - started
        body = await resp.json()
        assert resp.status == 200, body
        assert resp.headers["X-Search-Degraded"] == "typesense-unavailable"
        assert elapsed < 1.5
        assert seed.ids("metallica_berlin", "metallica_hamburg") <= {h["id"] for h in body["hits"]}
        assert _degraded_count() == before + 1
        assert _typesense_errors() == errors_before + 1

        # Same filters in the fallback: prefix, city typo, one day, near, facets.
        ids = {
            h["id"]
            for h in (
                await (
                    await client.get("/search", params={"term": "Metal", "location": "Berln"})
                ).json()
            )["hits"]
        }
        assert seed.ids("metallica_berlin") <= ids
        assert not seed.ids("metallica_hamburg") & ids
        _, day = await get_json(client, "/search", params={"date": "2031-06-01", "per_page": "100"})
        assert seed.ids("metallica_berlin", "phil_berlin") <= {h["id"] for h in day["hits"]}
        assert all(h["date"].startswith("2031-06-01") for h in day["hits"])
        _, near = await get_json(
            client,
            "/search",
            params={"near": "53.55,9.99", "radius_km": "30", "term": "Laune der Natur"},
        )
        assert {h["id"] for h in near["hits"]} == seed.ids("hosen_hamburg")
        _, faceted = await get_json(client, "/search", params={"term": "Adele Live"})
        counts = {f["value"]: f["count"] for f in faceted["facets"]["city"]}
        assert counts.get("Berlin", 0) >= 1 and counts.get("München", 0) >= 1
        assert faceted["found"] >= 2
    finally:
        await client.close()


async def test_search_is_503_when_typesense_and_postgres_are_both_down(catalog_settings) -> None:
    down = settings_with(
        catalog_settings,
        typesense_url=f"http://127.0.0.1:{free_port()}",
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nope",
    )
    client = await open_client(down)
    try:
        started = time.monotonic()
        status, body = await get_json(client, "/search", params={"term": "Adele"})
        assert_problem(status, body, 503, "backend_unavailable")
        assert time.monotonic() - started < 1.5
    finally:
        await client.close()
