"""Helpers shared by the search_sync integration tests (no tests here)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from typesense.exceptions import ObjectNotFound

from search_sync.reindex import alias_target
from tests.support import eventually
from ticketing.config import Settings
from ticketing.db.outbox import record_event_changed
from ticketing.search_index import make_client

SEATS = 4


async def insert_events(conn: asyncpg.Connection, names: list[str], city: str) -> list[int]:
    """Events with a venue, a performer and SEATS tickets each, written with plain SQL."""
    venue = await conn.fetchval(
        "INSERT INTO venues (name, city, country, lat, lon, seat_map, capacity) "
        "VALUES ($1, $2, 'DE', 52.52, 13.40, $3::jsonb, $4) RETURNING id",
        f"Halle {city}",
        city,
        json.dumps(
            {"sections": [{"name": "A", "rows": 1, "seats_per_row": SEATS, "price_cents": 4500}]}
        ),
        SEATS,
    )
    performer = await conn.fetchval(
        "INSERT INTO performers (name, genre) VALUES ($1, 'rock') RETURNING id", f"Band {city}"
    )
    ids = [
        row["id"]
        for row in await conn.fetch(
            "INSERT INTO events (name, description, starts_at, venue_id, performer_id, currency)"
            " SELECT name, 'A night out', now() + (ord || ' days')::interval, $2, $3, 'EUR'"
            " FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord) RETURNING id",
            names,
            venue,
            performer,
        )
    ]
    await conn.execute(
        'INSERT INTO tickets (event_id, section, "row", number, price_cents) '
        "SELECT e, 'A', '1', n, 4500 FROM unnest($1::bigint[]) e, generate_series(1, $2) n",
        ids,
        SEATS,
    )
    return ids


async def rename(pool: asyncpg.Pool, event_id: int, name: str) -> None:
    """An admin edit as every writer makes it: the change and its outbox row in one commit."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE events SET name = $2, updated_at = now() WHERE id = $1", event_id, name
        )
        await record_event_changed(conn, event_id, "edited")


def new_name() -> str:
    return f"Renamed {secrets.token_hex(4)}"


async def indexed_name(client: Any, alias: str, event_id: int) -> str | None:
    try:
        return (await client.collections[alias].documents[str(event_id)].retrieve())["name"]
    except ObjectNotFound:
        return None


async def wait_indexed(client: Any, alias: str, event_id: int, name: str, timeout: float = 10):
    await eventually(
        lambda: indexed_name(client, alias, event_id),
        lambda n: n == name,
        timeout,
        f"event {event_id} to be indexed as {name!r}",
    )


def service_env(settings: Settings) -> dict[str, str]:
    """The environment that makes ``Settings.from_env()`` in a child process equal ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    return {**env, **settings.to_env()}


async def drop_alias(settings: Settings) -> None:
    """Remove the alias and its collection, so the shared Typesense ends as it started."""
    client = make_client(settings)
    try:
        target = await alias_target(client, settings.typesense_collection)
        if target is not None:
            await client.aliases[settings.typesense_collection].delete()
            with contextlib.suppress(ObjectNotFound):
                await client.collections[target].delete()
    finally:
        await client.api_call.aclose()


# --- searching through catalog_api while something breaks ---------------------------------


@dataclass(frozen=True)
class Read:
    at: float
    seconds: float
    status: int
    indexed: bool  # answered from Typesense, not the PostgreSQL fallback
    ids: tuple[int, ...] = ()
    names: dict[int, str] = field(default_factory=dict)

    @property
    def good(self) -> bool:
        return self.status == 200 and self.indexed and bool(self.ids)


async def search(client: TestClient, term: str) -> Read:
    started = time.monotonic()
    resp = await client.get("/search", params={"term": term, "per_page": "50"})
    body = await resp.json()
    hits = body.get("hits", []) if resp.status == 200 else []
    return Read(
        started,
        time.monotonic() - started,
        resp.status,
        "X-Search-Degraded" not in resp.headers,
        tuple(hit["id"] for hit in hits),
        {hit["id"]: hit["name"] for hit in hits},
    )


@dataclass
class Reader:
    """Searches for ``term`` back to back until stopped, keeping every answer."""

    client: TestClient
    term: str
    reads: list[Read] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> list[Read]:
        while not self.stop.is_set():
            self.reads.append(await search(self.client, self.term))
            await asyncio.sleep(0.005)
        return self.reads

    def duplicated(self) -> int:
        return sum(len(set(r.ids)) != len(r.ids) for r in self.reads)

    def summary(self, since: float) -> str:
        after = [r for r in self.reads if r.at >= since]
        ms = sorted(r.seconds * 1000 for r in after)
        return (
            f"{len(after)} reads after the kill, {sum(not r.good for r in after)} failed, "
            f"latency median {statistics.median(ms):.1f} ms, "
            f"p99 {ms[int(len(ms) * 0.99) - 1]:.1f} ms, max {ms[-1]:.1f} ms, "
            f"{self.duplicated()} with a hit twice"
        )
