"""The demo catalog a developer gets from ``make demo``: real places, full seat inventories,
a year of dates, a few queued on-sales; loaded once, reloaded only when asked.

Runs in a database of its own, because ``--reset`` empties catalog tables other tests use.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from catalog_api.admin_bodies import VenueCreate
from catalog_api.admin_input import venue_input
from ticketing.api.validate import validate_mapping
from ticketing.db import migrate
from ticketing.demo import DemoCounts, load_demo
from ticketing.demo.catalog import build_catalog, sizes
from ticketing.demo.seating import load_cities

EVENTS = 300
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_url(database_url: str) -> Iterator[str]:
    url = database_url + "_demo"
    migrate.create_database(url)
    migrate.upgrade(url)
    yield url
    migrate.drop_database(url)


@pytest.fixture(scope="module")
async def loaded(demo_url: str) -> DemoCounts:
    return await load_demo(demo_url, EVENTS, seed=42, progress=False)


@pytest.fixture
async def conn(demo_url: str, loaded: DemoCounts) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(demo_url)
    yield connection
    await connection.close()


async def table_counts(conn: asyncpg.Connection) -> dict[str, int]:
    return {
        table: await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - names from the tuple below
        for table in ("venues", "performers", "events", "tickets", "outbox")
    }


async def test_the_catalog_has_what_was_asked_for(loaded: DemoCounts, conn) -> None:
    venues, performers = sizes(EVENTS)
    counts = await table_counts(conn)
    assert not loaded.skipped
    assert counts["events"] == loaded.events == EVENTS
    assert counts["venues"] == loaded.venues == venues >= 55
    assert counts["performers"] == loaded.performers == performers >= 60
    assert counts["tickets"] == loaded.tickets
    assert counts["outbox"] == 0, "search_sync reindexes at start; the loader announces nothing"
    assert await conn.fetchval("SELECT count(DISTINCT city) FROM venues") == loaded.cities >= 30
    venues_at_10k, performers_at_10k = sizes(10_000)
    assert venues_at_10k >= 200 and performers_at_10k >= 1000


async def test_every_event_has_one_available_ticket_per_seat(conn) -> None:
    mismatched = await conn.fetch(
        """
        SELECT e.id, v.capacity, count(t.id) AS tickets
        FROM events e JOIN venues v ON v.id = e.venue_id
        LEFT JOIN tickets t ON t.event_id = e.id
        GROUP BY e.id, v.capacity HAVING count(t.id) <> v.capacity
        """
    )
    assert mismatched == []
    assert await conn.fetchval("SELECT count(*) FROM tickets WHERE status <> 'available'") == 0
    assert await conn.fetchval(
        """SELECT count(*) FROM (SELECT DISTINCT event_id, section, "row", number FROM tickets) s"""
    ) == await conn.fetchval("SELECT count(*) FROM tickets")


async def test_tickets_follow_the_venue_seat_map(conn) -> None:
    """Per section: rows A, B, ... numbered from 1, priced as the seat map says."""
    wrong = await conn.fetch(
        """
        WITH plan AS (
            SELECT v.id AS venue_id, s->>'name' AS section, (s->>'rows')::int AS rows,
                   (s->>'seats_per_row')::int AS seats, (s->>'price_cents')::int AS price
            FROM venues v, jsonb_array_elements(v.seat_map->'sections') s
        ), actual AS (
            SELECT e.venue_id, t.event_id, t.section, count(DISTINCT t."row") AS rows,
                   max(t.number) AS seats, min(t.price_cents) AS low, max(t.price_cents) AS high,
                   bool_and(t."row" ~ '^[A-Z]+$') AS lettered
            FROM tickets t JOIN events e ON e.id = t.event_id
            GROUP BY e.venue_id, t.event_id, t.section
        )
        SELECT * FROM plan p JOIN actual a USING (venue_id, section)
        WHERE a.rows <> p.rows OR a.seats <> p.seats OR a.low <> p.price OR a.high <> p.price
              OR NOT a.lettered
        """
    )
    assert wrong == []
    capacity_off = await conn.fetch(
        """
        SELECT id FROM venues v WHERE capacity <> (
            SELECT sum((s->>'rows')::int * (s->>'seats_per_row')::int)
            FROM jsonb_array_elements(v.seat_map->'sections') s)
        """
    )
    assert capacity_off == []
    sizes_by_kind = await conn.fetchrow(
        "SELECT min(capacity) AS smallest, max(capacity) AS largest FROM venues"
    )
    assert sizes_by_kind["smallest"] >= 60 and sizes_by_kind["largest"] >= 2000


async def test_venues_are_what_the_admin_api_would_accept(conn) -> None:
    for venue in await conn.fetch("SELECT name, city, lat, lon, seat_map, capacity FROM venues"):
        body = {
            "name": venue["name"],
            "city": venue["city"],
            "location": {"lat": venue["lat"], "lon": venue["lon"]},
            "seat_map": json.loads(venue["seat_map"]),
        }
        valid = validate_mapping(body, VenueCreate, "body")  # as the route validates it
        assert venue_input(valid).capacity == venue["capacity"]


async def test_venues_stand_in_real_cities(conn) -> None:
    cities = {c.name: c for c in load_cities()}
    assert {"Berlin", "London", "Paris", "New York", "Tokyo", "São Paulo"} <= set(cities)
    for venue in await conn.fetch("SELECT name, city, country, lat, lon FROM venues"):
        city = cities[venue["city"]]
        assert venue["country"] == city.country
        assert km_between(venue["lat"], venue["lon"], city.lat, city.lon) < 30, venue["name"]
    # Spot-check the shipped coordinates themselves against well-known values.
    assert km_between(cities["Berlin"].lat, cities["Berlin"].lon, 52.52, 13.405) < 5
    assert km_between(cities["São Paulo"].lat, cities["São Paulo"].lon, -23.55, -46.63) < 5


async def test_events_fall_within_the_coming_year(conn) -> None:
    now = datetime.now(UTC)
    rows = await conn.fetch(
        """SELECT e.starts_at, e.on_sale_at, e.currency, v.city
           FROM events e JOIN venues v ON v.id = e.venue_id"""
    )
    currencies = {c.name: c.currency for c in load_cities()}
    assert all(now < r["starts_at"] < now + timedelta(days=365) for r in rows)
    assert all(r["on_sale_at"] < r["starts_at"] for r in rows)
    assert any(r["on_sale_at"] > now for r in rows), "some on-sales are still to come"
    assert all(r["currency"] == currencies[r["city"]] for r in rows)
    assert {"EUR", "GBP", "USD", "JPY"} <= {r["currency"] for r in rows}


async def test_a_few_hot_events_queue_at_arenas_and_go_on_sale_soon(conn) -> None:
    hot = await conn.fetch(
        """SELECT e.name, e.on_sale_at, v.capacity FROM events e
           JOIN venues v ON v.id = e.venue_id WHERE e.queue_enabled"""
    )
    assert 5 <= len(hot) <= 10
    soon = datetime.now(UTC) + timedelta(days=14)
    for event in hot:
        assert event["capacity"] >= 2000 and event["on_sale_at"] < soon, event["name"]
        assert " — " in event["name"]


async def test_the_same_seed_gives_the_same_catalog_on_any_day(conn) -> None:
    later = build_catalog(42, EVENTS, datetime.now(UTC) + timedelta(days=40))
    venues = [r["name"] for r in await conn.fetch("SELECT name FROM venues ORDER BY id")]
    performers = [r["name"] for r in await conn.fetch("SELECT name FROM performers ORDER BY id")]
    assert venues == [v.name for v in later.venues]
    assert performers == [p.name for p in later.performers]


async def test_loading_again_keeps_the_catalog_as_it_is(demo_url: str, conn) -> None:
    before = await table_counts(conn)
    again = await load_demo(demo_url, EVENTS, seed=42, progress=False)
    assert again.skipped and again.events == 0
    assert await table_counts(conn) == before


def run_cli(demo_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TICKETING_ENV": "test", "TICKETING_DATABASE_URL": demo_url}
    return subprocess.run(
        [sys.executable, "-m", "ticketing.demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


# Last in the module: it replaces the catalog the tests above look at.
async def test_reset_reloads_from_the_command_line(demo_url: str, conn) -> None:
    skipped = run_cli(demo_url, "--events", "40")
    assert skipped.returncode == 0 and "skipping" in skipped.stdout
    assert (await table_counts(conn))["events"] == EVENTS

    reloaded = run_cli(demo_url, "--events", "40", "--reset", "--seed", "7")
    assert reloaded.returncode == 0, reloaded.stderr
    assert "loaded 40 events" in reloaded.stdout
    counts = await table_counts(conn)
    assert counts["events"] == 40 and counts["venues"] == sizes(40)[0]
    assert await conn.fetchval("SELECT min(id) FROM events") == 1
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM events e JOIN venues v ON v.id = e.venue_id"
            " WHERE (SELECT count(*) FROM tickets t WHERE t.event_id = e.id) <> v.capacity"
        )
        == 0
    )


def km_between(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371 * math.asin(math.sqrt(a))
