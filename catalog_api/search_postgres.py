"""The search fallback when Typesense is down: the same filters and answer shape from a
Postgres query (pg_trgm for typo tolerance, ILIKE for prefixes and substrings).

It is slower and less clever than Typesense, but it keeps search answering; the trigram GIN
indexes of the schema keep it usable at catalog sizes.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from aiohttp import web

from catalog_api.event_views import View, load_views
from catalog_api.read_routing import ReadPlan
from catalog_api.search_query import SearchQuery
from ticketing.db.events import summary

FACET_VALUES = 20

# $1 term, $2 term as an ILIKE pattern, $3 location, $4/$5 date bounds, $6/$7/$8 near,
# $9 limit, $10 offset. `<%` is pg_trgm's word similarity (a typo-tolerant word match) and
# `%` its similarity (typo-tolerant whole-string match, for cities).
_SEARCH_SQL = """
WITH matched AS (
    SELECT e.id, e.starts_at, v.city,
           CASE WHEN $1::text IS NULL THEN 0 ELSE greatest(
               word_similarity($1, e.name), word_similarity($1, p.name),
               word_similarity($1, v.name)) END AS score
    FROM events e
    JOIN venues v ON v.id = e.venue_id
    JOIN performers p ON p.id = e.performer_id
    WHERE ($1::text IS NULL
           OR e.name ILIKE $2 OR p.name ILIKE $2 OR v.name ILIKE $2
           OR $1 <% e.name OR $1 <% p.name OR $1 <% v.name)
      AND ($3::text IS NULL OR lower(v.city) = lower($3) OR v.city % $3)
      AND ($4::timestamptz IS NULL OR e.starts_at >= $4)
      AND ($5::timestamptz IS NULL OR e.starts_at < $5)
      AND ($6::float8 IS NULL OR 2 * 6371.0088 * asin(sqrt(
               sin(radians(v.lat - $6) / 2) ^ 2
               + cos(radians($6)) * cos(radians(v.lat)) * sin(radians(v.lon - $7) / 2) ^ 2
          )) <= $8)
)
SELECT
    (SELECT count(*) FROM matched) AS found,
    (SELECT coalesce(jsonb_agg(jsonb_build_object('value', city, 'count', n)
                               ORDER BY n DESC, city), '[]'::jsonb)
     FROM (SELECT city, count(*) AS n FROM matched GROUP BY city
           ORDER BY n DESC, city LIMIT $11) per_city) AS facets,
    ARRAY(SELECT id FROM matched ORDER BY score DESC, starts_at, id
          LIMIT $9 OFFSET $10) AS ids
"""


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_postgres(
    app: web.Application, conn: asyncpg.Connection, query: SearchQuery, plan: ReadPlan
) -> tuple[dict[str, Any], dict[int, View]]:
    """The answer, and the views read from ``conn`` (for the caller to cache)."""
    near = query.near
    row = await conn.fetchrow(
        _SEARCH_SQL,
        query.term,
        _like_pattern(query.term) if query.term else None,
        query.location,
        query.starts_from,
        query.starts_before,
        near.lat if near else None,
        near.lon if near else None,
        near.radius_km if near else None,
        query.per_page,
        query.offset,
        FACET_VALUES,
    )
    if row is None:  # an aggregate over the matches: one row, even for none
        raise RuntimeError("the search query returned no row")
    ids = list(row["ids"])
    views, fresh = await load_views(app, conn, ids, plan)
    facets = row["facets"]
    if isinstance(facets, str):
        facets = json.loads(facets)
    answer = {
        "found": row["found"],
        "page": query.page,
        "hits": [summary(views[i]) for i in ids if i in views],
        "facets": {"city": facets},
    }
    return answer, fresh
