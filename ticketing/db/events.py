"""The event read model: one query builds full event views from the source of truth.

catalog_api serves (and caches) these views; search_sync indexes them in Typesense. Both go
through :func:`fetch_event_views`, so a view and its search document never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from ticketing.validation import rfc3339

_VIEW_SQL = """
SELECT e.id, e.name, e.description, e.starts_at, e.on_sale_at, e.queue_enabled, e.currency,
       v.id AS venue_id, v.name AS venue_name, v.city, v.lat, v.lon,
       p.id AS performer_id, p.name AS performer_name,
       coalesce(s.tiers, '[]'::jsonb) AS tiers
FROM events e
JOIN venues v ON v.id = e.venue_id
JOIN performers p ON p.id = e.performer_id
LEFT JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object(
               'section', section, 'price_cents', price_cents, 'total', total,
               'available', available, 'reserved', reserved, 'booked', booked)
           ORDER BY price_cents DESC, section) AS tiers
    FROM (
        SELECT section, min(price_cents) AS price_cents, count(*) AS total,
               count(*) FILTER (WHERE status = 'available') AS available,
               count(*) FILTER (WHERE status = 'reserved') AS reserved,
               count(*) FILTER (WHERE status = 'booked') AS booked
        FROM tickets WHERE event_id = e.id GROUP BY section
    ) per_section
) s ON true
WHERE e.id = ANY($1::bigint[])
"""


async def fetch_event_views(
    conn: asyncpg.Connection | asyncpg.Pool, event_ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Full views (EventSummary plus detail fields) of the events that exist, by id."""
    if not event_ids:
        return {}
    rows = await conn.fetch(_VIEW_SQL, list(event_ids))
    return {row["id"]: _view(row) for row in rows}


def _view(row: asyncpg.Record) -> dict[str, Any]:
    tiers = row["tiers"]
    if isinstance(tiers, str):
        tiers = json.loads(tiers)
    totals = {k: sum(t[k] for t in tiers) for k in ("available", "reserved", "booked", "total")}
    on_sale_prices = [t["price_cents"] for t in tiers if t["available"] > 0]
    all_prices = [t["price_cents"] for t in tiers]
    # "From" price: the cheapest seat still on sale; when sold out, the cheapest there was.
    min_price = min(on_sale_prices or all_prices or [0])
    return {
        "id": row["id"],
        "name": row["name"],
        "date": rfc3339(row["starts_at"]),
        "venue": {
            "id": row["venue_id"],
            "name": row["venue_name"],
            "city": row["city"],
            "location": {"lat": row["lat"], "lon": row["lon"]},
        },
        "performer": {"id": row["performer_id"], "name": row["performer_name"]},
        "min_price_cents": min_price,
        "currency": row["currency"].strip(),
        "available_tickets": totals["available"],
        "queue_enabled": row["queue_enabled"],
        "description": row["description"],
        "on_sale_at": rfc3339(row["on_sale_at"]),
        "availability": totals,
        "price_tiers": tiers,
    }


def summary(view: dict[str, Any]) -> dict[str, Any]:
    """The EventSummary of a full view (what lists and search hits show)."""
    venue = view["venue"]
    return {
        "id": view["id"],
        "name": view["name"],
        "date": view["date"],
        "venue": {"id": venue["id"], "name": venue["name"], "city": venue["city"]},
        "performer": view["performer"],
        "min_price_cents": view["min_price_cents"],
        "currency": view["currency"],
        "available_tickets": view["available_tickets"],
        "queue_enabled": view["queue_enabled"],
    }
