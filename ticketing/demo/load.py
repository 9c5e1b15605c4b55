"""Writing the demo catalog to Postgres: one transaction, COPY for every table.

Ids come from the tables' own sequences (reserved in bulk before the COPY) so ticket rows
can name their event, and so the catalog can sit beside rows an admin already created.
No outbox rows: search_sync reindexes everything from Postgres when it starts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from tqdm import tqdm

from ticketing.demo.catalog import Catalog, build_catalog

log = logging.getLogger(__name__)

# Two loaders at once would both see an empty catalog: the second waits here, then skips.
_LOCK_KEY = int.from_bytes(b"tk-demo!", "big")
# CASCADE also empties holds, bookings and payments: they belong to the events being
# wiped and cannot outlive them.
_RESET_SQL = "TRUNCATE venues, performers, events, tickets, outbox RESTART IDENTITY CASCADE"
# Nobody else inserts catalog rows while we load (readers are not blocked), so a block of
# ids taken from each sequence at once is ours alone: no nextval() per row in the COPY,
# which costs as much as the insert itself.
_LOCK_TABLES_SQL = "LOCK TABLE venues, performers, events, tickets IN SHARE ROW EXCLUSIVE MODE"
_RESERVE_IDS_SQL = """
SELECT setval(pg_get_serial_sequence($1, 'id'), nextval(pg_get_serial_sequence($1, 'id')) + $2 - 1)
"""
# Row-by-row foreign-key checks (trigger events queued per ticket) are half the load time.
# Every row here references a row copied in this same transaction, so a superuser may skip
# them -- but only while the tables have no triggers of their own that would be skipped too.
_CAN_SKIP_TRIGGERS_SQL = """
SELECT current_setting('is_superuser') = 'on'
   AND NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgrelid = ANY ('{venues,performers,events,tickets}'::regclass[])
                     AND NOT tgisinternal)
"""


@dataclass(frozen=True, slots=True)
class DemoCounts:
    """What one call loaded; all zero with ``skipped`` when a catalog was already there."""

    cities: int = 0
    venues: int = 0
    performers: int = 0
    events: int = 0
    queue_enabled: int = 0
    tickets: int = 0
    seconds: float = 0.0
    skipped: bool = False


async def load_demo(
    database_url: str, events: int, seed: int = 42, progress: bool = True, *, reset: bool = False
) -> DemoCounts:
    """Load ``events`` demo events with all their tickets, unless events exist already.

    With ``reset`` the catalog tables are emptied first, in the same transaction, so a
    failure at any point leaves the previous catalog as it was.
    """
    if events < 1:
        raise ValueError(f"events must be at least 1, got {events}")
    started = time.perf_counter()
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            if reset:
                await conn.execute(_RESET_SQL)
            elif await conn.fetchval("SELECT EXISTS (SELECT 1 FROM events)"):
                log.info("events table is not empty; demo catalog not loaded")
                return DemoCounts(seconds=time.perf_counter() - started, skipped=True)
            await conn.execute(_LOCK_TABLES_SQL)
            if await conn.fetchval(_CAN_SKIP_TRIGGERS_SQL):
                await conn.execute("SET LOCAL session_replication_role = replica")
            catalog = build_catalog(seed, events, datetime.now(UTC))
            log.info(
                "generated %d venues, %d performers, %d events (seed %d)",
                len(catalog.venues),
                len(catalog.performers),
                len(catalog.events),
                seed,
            )
            tickets = await _copy_catalog(conn, catalog, progress)
        # Fresh statistics, or the planner takes the million-row tickets table for empty.
        await conn.execute("ANALYZE venues, performers, events, tickets")
    finally:
        await conn.close()
    return DemoCounts(
        cities=len({v.city.name for v in catalog.venues}),
        venues=len(catalog.venues),
        performers=len(catalog.performers),
        events=len(catalog.events),
        queue_enabled=sum(e.queue_enabled for e in catalog.events),
        tickets=tickets,
        seconds=time.perf_counter() - started,
    )


async def _reserve_ids(conn: asyncpg.Connection, table: str, count: int) -> range:
    last = await conn.fetchval(_RESERVE_IDS_SQL, table, count)
    return range(last - count + 1, last + 1)


async def _copy_catalog(conn: asyncpg.Connection, catalog: Catalog, progress: bool) -> int:
    venue_ids = await _reserve_ids(conn, "venues", len(catalog.venues))
    await conn.copy_records_to_table(
        "venues",
        columns=("id", "name", "city", "country", "lat", "lon", "seat_map", "capacity"),
        records=[
            (
                vid,
                v.name,
                v.city.name,
                v.city.country,
                v.lat,
                v.lon,
                json.dumps(v.seat_map()),
                v.capacity,
            )
            for vid, v in zip(venue_ids, catalog.venues, strict=True)
        ],
    )
    performer_ids = await _reserve_ids(conn, "performers", len(catalog.performers))
    await conn.copy_records_to_table(
        "performers",
        columns=("id", "name", "genre", "description"),
        records=[
            (pid, p.name, p.genre, p.description)
            for pid, p in zip(performer_ids, catalog.performers, strict=True)
        ],
    )
    event_ids = await _reserve_ids(conn, "events", len(catalog.events))
    await conn.copy_records_to_table(
        "events",
        columns=(
            "id",
            "name",
            "description",
            "starts_at",
            "venue_id",
            "performer_id",
            "on_sale_at",
            "queue_enabled",
            "currency",
        ),
        records=[
            (
                eid,
                e.name,
                e.description,
                e.starts_at,
                venue_ids[e.venue],
                performer_ids[e.performer],
                e.on_sale_at,
                e.queue_enabled,
                e.currency,
            )
            for eid, e in zip(event_ids, catalog.events, strict=True)
        ],
    )
    log.info("copied venues, performers and events; copying tickets")
    seats = [venue.seats() for venue in catalog.venues]
    ticket_ids = await _reserve_ids(
        conn, "tickets", sum(len(seats[e.venue]) for e in catalog.events)
    )
    with tqdm(total=len(event_ids), unit="event", desc="tickets", disable=not progress) as bar:
        # One COPY fed by a generator: Postgres inserts while Python builds the next rows.
        await conn.copy_records_to_table(
            "tickets",
            columns=("id", "event_id", "section", "row", "number", "price_cents"),
            records=_ticket_rows(catalog, seats, event_ids, ticket_ids, bar),
        )
    return len(ticket_ids)


def _ticket_rows(
    catalog: Catalog,
    seats: list[list[tuple[str, str, int, int]]],
    event_ids: range,
    ticket_ids: range,
    bar: tqdm[Any],
) -> Iterator[tuple[int, int, str, str, int, int]]:
    """One available ticket per seat of each event's venue, priced by section."""
    ids = iter(ticket_ids)
    for event_id, event in zip(event_ids, catalog.events, strict=True):
        for section, row, number, price in seats[event.venue]:
            yield next(ids), event_id, section, row, number, price
        bar.update()
