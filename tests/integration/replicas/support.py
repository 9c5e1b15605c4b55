"""Plain helpers of the replica stories: PostgreSQL servers of the module's own (a primary
and a streaming replica, or a pg_auto_failover formation; deploy/pg_cluster.py,
deploy/pg_autofailover.py), the catalog app reading from them, and what a test needs to
look at a replica: pausing its replay, its lag as the catalog's metrics say it."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestClient

from deploy.pg_cluster import LocalServer
from tests.integration.catalog.support import SEAT_MAP, admin_headers, open_client, post_ok
from tests.support import eventually
from ticketing.config import Settings

# Every commit on the primary waits for the replica: what it acknowledged, the replica has.
REPLICA = "replica1"


def temp_base() -> Path:
    """A directory for servers of ours; the postgres user (as root) is given it."""
    return Path(tempfile.mkdtemp(prefix="tk-pg-"))


async def seed_event(client: TestClient, settings: Settings, name: str) -> dict:
    """A venue, a performer and an event, through the admin routes (on the primary)."""
    venue = await post_ok(
        client,
        "/admin/venues",
        {"name": f"{name} Hall", "city": "Replica City", "location": {"lat": 1, "lon": 2},
         "seat_map": SEAT_MAP},
        settings,
    )  # fmt: skip
    performer = await post_ok(client, "/admin/performers", {"name": f"{name} Band"}, settings)
    body = {
        "name": name,
        "description": f"{name}, read from a replica",
        "date": "2031-09-01T19:00:00Z",
        "queue_enabled": False,
        "venue_id": venue["id"],
        "performer_id": performer["id"],
        "on_sale_at": "2030-01-01T10:00:00Z",
        "currency": "EUR",
    }
    return await post_ok(client, "/admin/events", body, settings)


async def query(url: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def caught_up(primary: LocalServer, replica: LocalServer) -> None:
    """Until the replica has replayed all the primary has written."""
    target = await query(primary.url(), "SELECT pg_current_wal_lsn()::text")

    async def replayed() -> object:
        return await query(
            replica.url(), "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", target
        )

    await eventually(replayed, bool, 10, "the replica to replay the primary's WAL")


async def pause_replay(replica: LocalServer) -> None:
    """Returns once replay has stopped (a pause is only requested at first)."""
    await query(replica.url(), "SELECT pg_wal_replay_pause()")

    async def paused() -> object:
        return await query(replica.url(), "SELECT pg_get_wal_replay_pause_state() = 'paused'")

    await eventually(paused, bool, 10, "the replay to pause")


async def resume_replay(replica: LocalServer) -> None:
    await query(replica.url(), "SELECT pg_wal_replay_resume()")


async def replica_metrics(client: TestClient, replica: LocalServer) -> dict[str, float]:
    """The catalog's own gauges of this replica, from its /metrics."""
    resp = await client.get("/metrics")
    text = await resp.text()
    found = {}
    for name in ("lag_seconds", "lag_bytes", "usable"):
        pattern = rf'^ticketing_pg_replica_{name}\{{[^}}]*replica="{re.escape(replica.name)}"'
        line = next(line for line in text.splitlines() if re.match(pattern, line))
        found[name] = float(line.rsplit(" ", 1)[1])
    return found


async def name_seen(client: TestClient, event_id: int, headers: dict | None = None) -> str:
    resp = await client.get(f"/events/{event_id}", headers=headers or {})
    assert resp.status == 200, await resp.text()
    name: str = (await resp.json())["name"]
    return name


async def listed_name(client: TestClient, event_id: int, headers: dict | None = None) -> str:
    resp = await client.get("/events?city=Replica%20City&limit=100", headers=headers or {})
    assert resp.status == 200, await resp.text()
    names = {e["id"]: e["name"] for e in (await resp.json())["items"]}
    return names[event_id]


async def catalog(settings: Settings) -> TestClient:
    return await open_client(settings)


__all__ = ["REPLICA", "admin_headers"]
