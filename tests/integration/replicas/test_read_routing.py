"""Catalog reads go to the streaming replica; the admin who just wrote reads their write.

The replica's replay is paused, so it answers with the catalog as it was: what an
anonymous reader sees then is the replica's (the primary has the change), and the admin
who made the change sees it. A replica that is down costs no read an error.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from tests.integration.replicas.conftest import Pair
from tests.integration.replicas.support import (
    admin_headers,
    catalog,
    caught_up,
    listed_name,
    name_seen,
    pause_replay,
    resume_replay,
    seed_event,
)
from tests.support import auth_header, eventually, settings_with
from ticketing.config import Settings


async def test_reads_come_from_the_replica_and_the_admin_who_wrote_reads_it(
    pair: Pair, replica_settings: Settings
) -> None:
    # The paused replica stays within the bound for the few reads below.
    settings = settings_with(replica_settings, pg_replica_max_lag_seconds=5.0)
    client = await catalog(settings)
    admin = admin_headers(settings)  # "root", who writes
    other_admin = auth_header(settings, "someone-else", ["admin"])
    try:
        event = await seed_event(client, settings, "Paused Replay Night")
        event_id = event["id"]
        await caught_up(pair.primary, pair.replica)
        assert await name_seen(client, event_id) == "Paused Replay Night"
        seat = await asyncpg.connect(pair.primary.url())
        await pause_replay(pair.replica)
        try:
            resp = await client.patch(
                f"/admin/events/{event_id}", json={"name": "Renamed"}, headers=admin
            )
            assert resp.status == 200, await resp.text()
            # A seat held meanwhile (a booking worker's write, on the primary).
            await hold_first_seat(seat, event_id)
            # Anyone reads the replica, which has neither: the control that the reads
            # are the replica's, since the primary has both.
            assert await name_seen(client, event_id) == "Paused Replay Night"
            assert await listed_name(client, event_id) == "Paused Replay Night"
            assert await first_seat(client, event_id) == "available"
            assert await name_seen(client, event_id, other_admin) == "Paused Replay Night"
            # The admin who wrote reads their write, and the seat sold since, from the
            # primary (the replica has not replayed it).
            assert await name_seen(client, event_id, admin) == "Renamed"
            assert await listed_name(client, event_id, admin) == "Renamed"
            assert await first_seat(client, event_id, admin) == "reserved"
            assert await query_primary_name(pair, event_id) == "Renamed"
        finally:
            await resume_replay(pair.replica)
            await seat.close()
        await caught_up(pair.primary, pair.replica)
        # A view cached from the paused replica lives for the lag bound at most.
        await eventually(
            lambda: listed_name(client, event_id), "Renamed".__eq__, 10, "the edit for all"
        )
        assert await first_seat(client, event_id) == "reserved"
    finally:
        await client.close()


async def test_a_replica_down_sends_reads_to_the_primary_without_errors(
    pair: Pair, replica_settings: Settings
) -> None:
    # Views cached for a second at most: each read of a view below reaches PostgreSQL.
    settings = settings_with(replica_settings, pg_replica_max_lag_seconds=0.5)
    client = await catalog(settings)
    try:
        event = await seed_event(client, settings, "Replica Down Night")
        await caught_up(pair.primary, pair.replica)
        assert (await health(client))["postgres"] == engine(healthy=2)
        pair.replica.stop("immediate")
        try:
            started = time.monotonic()
            statuses = []
            while time.monotonic() - started < 2.0:  # before and after the sampler sees it
                for path in (
                    f"/events/{event['id']}",
                    "/events?city=Replica%20City",
                    f"/events/{event['id']}/tickets",
                ):
                    resp = await client.get(path)
                    statuses.append(resp.status)
                await asyncio.sleep(0.1)
            assert set(statuses) == {200}, statuses
            components = await health(client)
            assert components["postgres"] == engine(healthy=1)
        finally:
            pair.replica.start()
        await eventually(
            lambda: health(client),
            lambda c: c["postgres"] == engine(healthy=2),
            10,
            "the replica back in use",
        )
    finally:
        await client.close()


async def first_seat(client, event_id: int, headers: dict | None = None) -> str:  # type: ignore[no-untyped-def]
    resp = await client.get(f"/events/{event_id}/tickets?limit=1", headers=headers or {})
    assert resp.status == 200, await resp.text()
    status: str = (await resp.json())["items"][0]["status"]
    return status


async def hold_first_seat(conn: asyncpg.Connection, event_id: int) -> None:
    async with conn.transaction():
        hold = await conn.fetchval(
            """INSERT INTO holds (id, event_id, user_id, status, amount_cents, currency,
                                  expires_at)
               VALUES (gen_random_uuid(), $1, 'fan', 'held', 12000, 'EUR',
                       now() + interval '10 minutes')
               RETURNING id""",
            event_id,
        )
        await conn.execute(
            "UPDATE tickets SET status = 'reserved', hold_id = $2 WHERE id = "
            "(SELECT min(id) FROM tickets WHERE event_id = $1)",
            event_id,
            hold,
        )


async def query_primary_name(pair: Pair, event_id: int) -> str:
    conn = await asyncpg.connect(pair.primary.url())
    try:
        name: str = await conn.fetchval("SELECT name FROM events WHERE id = $1", event_id)
    finally:
        await conn.close()
    return name


async def health(client) -> dict:  # type: ignore[no-untyped-def]
    resp = await client.get("/healthz")
    body = await resp.json()
    assert resp.status == 200, body
    components: dict = body["components"]
    return components


def engine(healthy: int) -> dict:
    return {"status": "ok", "mode": "replicas", "nodes": 2, "healthy": healthy}
