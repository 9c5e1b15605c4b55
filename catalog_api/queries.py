"""Read queries of the catalog: event listing and ticket listing, keyset-paginated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class EventFilter:
    city: str | None = None
    starts_from: datetime | None = None  # inclusive
    starts_before: datetime | None = None  # exclusive
    performer_id: int | None = None


_LIST_EVENTS_SQL = """
SELECT e.id, e.starts_at
FROM events e
JOIN venues v ON v.id = e.venue_id
WHERE ($1::text IS NULL OR lower(v.city) = lower($1))
  AND ($2::timestamptz IS NULL OR e.starts_at >= $2)
  AND ($3::timestamptz IS NULL OR e.starts_at < $3)
  AND ($4::bigint IS NULL OR e.performer_id = $4)
  AND ($5::timestamptz IS NULL OR (e.starts_at, e.id) > ($5, $6::bigint))
ORDER BY e.starts_at, e.id
LIMIT $7
"""


async def list_events(
    conn: asyncpg.Connection,
    filters: EventFilter,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to ``limit`` (id, starts_at) rows in (date, id) order after the keyset ``after``."""
    after_at, after_id = after if after is not None else (None, None)
    return await conn.fetch(
        _LIST_EVENTS_SQL,
        filters.city,
        filters.starts_from,
        filters.starts_before,
        filters.performer_id,
        after_at,
        after_id,
        limit,
    )


async def event_exists(conn: asyncpg.Connection, event_id: int) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM events WHERE id = $1)", event_id))


_LIST_TICKETS_SQL = """
SELECT id, section, "row", number, price_cents, status::text AS status
FROM tickets
WHERE event_id = $1
  AND ($2::text IS NULL OR status = $2::ticket_status)
  AND ($3::text IS NULL OR section = $3)
  AND id > $4
ORDER BY id
LIMIT $5
"""


async def list_tickets(
    conn: asyncpg.Connection,
    event_id: int,
    status: str | None,
    section: str | None,
    after_id: int,
    limit: int,
) -> list[asyncpg.Record]:
    # Tickets are written in seat order at event creation, so id order is seat-map order.
    return await conn.fetch(_LIST_TICKETS_SQL, event_id, status, section, after_id, limit)
