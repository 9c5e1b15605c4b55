"""catalog_api with Postgres down: views from the cache or the search index, search from
Typesense, and fast 503s for what only Postgres can answer."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from tests.integration.catalog.support import Seed, assert_problem, get_json, open_client
from tests.support import free_port, settings_with
from ticketing import cache


def closed_database_url() -> str:
    return f"postgresql://postgres@127.0.0.1:{free_port()}/ticketing"


async def test_views_and_search_survive_postgres_being_down(
    client, catalog_settings, seed: Seed
) -> None:
    warm_id = seed.events["metallica_hamburg"]["id"]
    cold_id = seed.events["adele_munich"]["id"]
    status, warm_view = await get_json(client, f"/events/{warm_id}")
    assert status == 200
    status, cold_view = await get_json(client, f"/events/{cold_id}")
    assert status == 200
    redis = Redis.from_url(catalog_settings.redis_url)
    try:
        await cache.invalidate(redis, catalog_settings.redis_prefix, [cold_id])
    finally:
        await redis.aclose()

    down = await open_client(settings_with(catalog_settings, database_url=closed_database_url()))
    try:
        started = time.monotonic()
        resp = await down.get(f"/events/{warm_id}")
        assert resp.status == 200
        assert resp.headers["X-Served-From"] == "cache"
        assert await resp.json() == warm_view

        resp = await down.get(f"/event/{cold_id}")
        assert resp.status == 200
        assert resp.headers["X-Served-From"] == "search-index"
        assert await resp.json() == cold_view

        status, body = await get_json(down, "/events/987654321")
        assert_problem(status, body, 404, "event_not_found")

        resp = await down.get("/search", params={"term": "Adele"})
        body = await resp.json()
        assert resp.status == 200
        assert "X-Search-Degraded" not in resp.headers
        assert {h["id"] for h in body["hits"]} == seed.ids("adele_munich", "adele_berlin")

        for path in (f"/events/{warm_id}/tickets", "/events"):
            status, body = await get_json(down, path)
            assert_problem(status, body, 503, "backend_unavailable")
        status, body = await get_json(down, "/healthz")
        assert status == 503
        assert body["components"]["postgres"].startswith("down")
        assert body["components"]["typesense"]["status"] == "ok"
        assert time.monotonic() - started < 3
    finally:
        await down.close()


async def test_tickets_503_is_fast_on_every_request(catalog_settings, seed: Seed) -> None:
    down = await open_client(settings_with(catalog_settings, database_url=closed_database_url()))
    try:
        for _ in range(3):
            started = time.monotonic()
            status, body = await get_json(
                down, f"/events/{seed.events['phil_berlin']['id']}/tickets"
            )
            assert_problem(status, body, 503, "backend_unavailable")
            assert time.monotonic() - started < 1.0
    finally:
        await down.close()


async def test_uncached_view_is_503_when_postgres_and_typesense_are_down(
    catalog_settings, seed: Seed
) -> None:
    event_id = seed.events["phil_berlin"]["id"]
    redis = Redis.from_url(catalog_settings.redis_url)
    try:
        await cache.invalidate(redis, catalog_settings.redis_prefix, [event_id])
    finally:
        await redis.aclose()
    down = await open_client(
        settings_with(
            catalog_settings,
            database_url=closed_database_url(),
            typesense_url=f"http://127.0.0.1:{free_port()}",
        )
    )
    try:
        started = time.monotonic()
        status, body = await get_json(down, f"/events/{event_id}")
        assert_problem(status, body, 503, "backend_unavailable")
        assert time.monotonic() - started < 1.0
    finally:
        await down.close()
