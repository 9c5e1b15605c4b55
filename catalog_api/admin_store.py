"""Catalog writes. Each runs in one transaction with its outbox record, so search_sync and
the view cache hear about exactly the changes that committed."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from catalog_api.admin_input import EventInput, PerformerInput, VenueInput, check_on_sale
from catalog_api.refusals import event_not_found
from ticketing.db.outbox import record_event_changed
from ticketing.domain.seating import sections_of, ticket_records
from ticketing.problems import Problem

TICKET_COLUMNS = ["event_id", "section", "row", "number", "price_cents"]


def venue_not_found() -> Problem:
    return Problem(
        404, "venue_not_found", "There is no venue with this venue_id.", field="venue_id"
    )


def performer_not_found() -> Problem:
    return Problem(
        404,
        "performer_not_found",
        "There is no performer with this performer_id.",
        field="performer_id",
    )


def _venue_json(row: asyncpg.Record) -> dict[str, Any]:
    seat_map = row["seat_map"]
    return {
        "id": row["id"],
        "name": row["name"],
        "city": row["city"],
        "location": {"lat": row["lat"], "lon": row["lon"]},
        "seat_map": json.loads(seat_map) if isinstance(seat_map, str) else seat_map,
        "capacity": row["capacity"],
    }


async def insert_venue(conn: asyncpg.Connection, venue: VenueInput) -> dict[str, Any]:
    seat_map = {"sections": [s.to_json() for s in venue.sections]}
    row = await conn.fetchrow(
        """INSERT INTO venues (name, city, lat, lon, seat_map, capacity)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6)
           RETURNING id, name, city, lat, lon, seat_map, capacity""",
        venue.name,
        venue.city,
        venue.lat,
        venue.lon,
        json.dumps(seat_map),
        venue.capacity,
    )
    if row is None:  # INSERT ... RETURNING always returns the row it wrote
        raise RuntimeError("INSERT INTO venues returned no row")
    return _venue_json(row)


async def insert_performer(conn: asyncpg.Connection, performer: PerformerInput) -> dict[str, Any]:
    row = await conn.fetchrow(
        """INSERT INTO performers (name, genre, description) VALUES ($1, $2, $3)
           RETURNING id, name, genre, description""",
        performer.name,
        performer.genre,
        performer.description,
    )
    if row is None:  # INSERT ... RETURNING always returns the row it wrote
        raise RuntimeError("INSERT INTO performers returned no row")
    return dict(row)


async def _require_performer(conn: asyncpg.Connection, performer_id: int) -> None:
    # FOR KEY SHARE: the performer cannot be deleted before the event referencing it commits.
    found = await conn.fetchval(
        "SELECT 1 FROM performers WHERE id = $1 FOR KEY SHARE", performer_id
    )
    if found is None:
        raise performer_not_found()


async def create_event(conn: asyncpg.Connection, event: EventInput) -> int:
    """Insert the event and one ticket per seat of its venue; returns the event id."""
    async with conn.transaction():
        seat_map = await conn.fetchval(
            "SELECT seat_map FROM venues WHERE id = $1 FOR KEY SHARE", event.venue_id
        )
        if seat_map is None:
            raise venue_not_found()
        await _require_performer(conn, event.performer_id)
        event_id: int = await conn.fetchval(
            """INSERT INTO events (name, description, starts_at, venue_id, performer_id,
                                   on_sale_at, queue_enabled, currency)
               VALUES ($1, $2, $3, $4, $5, coalesce($6, now()), $7, $8)
               RETURNING id""",
            event.name,
            event.description,
            event.starts_at,
            event.venue_id,
            event.performer_id,
            event.on_sale_at,
            event.queue_enabled,
            event.currency,
        )
        sections = sections_of(json.loads(seat_map) if isinstance(seat_map, str) else seat_map)
        # COPY: a 100,000-seat stadium is one round trip, not 100,000 INSERTs.
        await conn.copy_records_to_table(
            "tickets", records=ticket_records(event_id, sections), columns=TICKET_COLUMNS
        )
        await record_event_changed(conn, event_id, "created")
    return event_id


async def update_event(conn: asyncpg.Connection, event_id: int, changes: dict[str, Any]) -> None:
    async with conn.transaction():
        current = await conn.fetchrow(
            "SELECT starts_at, on_sale_at FROM events WHERE id = $1 FOR UPDATE", event_id
        )
        if current is None:
            raise event_not_found()
        if "starts_at" in changes or "on_sale_at" in changes:
            check_on_sale(
                changes.get("on_sale_at", current["on_sale_at"]),
                changes.get("starts_at", current["starts_at"]),
            )
        if "performer_id" in changes:
            await _require_performer(conn, changes["performer_id"])
        if "currency" in changes:
            sold = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM tickets WHERE event_id = $1"
                " AND status <> 'available')",
                event_id,
            )
            if sold:
                raise Problem(
                    409,
                    "currency_locked",
                    "The currency cannot change once tickets are held or sold.",
                    field="currency",
                )
        # Column names come from the fixed whitelist in admin_input.event_changes.
        columns = list(changes)
        assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
        await conn.execute(
            f"UPDATE events SET {assignments}, updated_at = now() WHERE id = $1",  # noqa: S608 - whitelisted columns, values are parameters
            event_id,
            *(changes[c] for c in columns),
        )
        await record_event_changed(conn, event_id, "edited")
