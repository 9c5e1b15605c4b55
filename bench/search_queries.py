"""The fixed query mix of bench/search.py, each as an API path and as the Typesense request
catalog_api makes for it (same q, query_by, typo, prefix, sort, facet and filter params).

Queries are drawn from the bench catalog itself, so they find things: full and misspelt
performer names, name prefixes, venue names, cities (one misspelt), a day, date ranges
and combinations. The list is the same on every run over the same catalog.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import psycopg

from catalog_api.search_typesense import FACET_VALUES, MAX_CITY_MATCHES, QUERY_BY
from ticketing.config import Settings

PER_PAGE = 20


@dataclass(frozen=True, slots=True)
class Query:
    api_path: str
    typesense_path: str


def _typo(word: str) -> str:
    """Swap two letters in the middle: 'Metallica' -> 'Metlalica'."""
    i = len(word) // 2
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]


def _drop_letter(word: str) -> str:
    i = len(word) // 2
    return word[:i] + word[i + 1 :]


def _day_start(day: date) -> int:
    return int(datetime.combine(day, time.min, tzinfo=UTC).timestamp())


def _typesense_get(settings: Settings, path: str, params: dict[str, Any]) -> dict[str, Any]:
    url = f"{settings.typesense_url}{path}?{urlencode(params, quote_via=quote)}"
    request = urllib.request.Request(
        url, headers={"X-TYPESENSE-API-KEY": settings.typesense_api_key}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def _resolve_cities(settings: Settings, location: str) -> list[str]:
    """What catalog_api resolves a location to (it caches this, so in steady state a search
    is one Typesense request, the one measured)."""
    result = _typesense_get(
        settings,
        f"/collections/{settings.typesense_collection}/documents/search",
        {
            "q": location,
            "query_by": "city",
            "group_by": "city",
            "group_limit": 1,
            "per_page": MAX_CITY_MATCHES,
            "include_fields": "city",
            "num_typos": 2,
        },
    )
    groups = [(g["hits"][0]["text_match"], g["group_key"][0]) for g in result["grouped_hits"]]
    best = max(score for score, _ in groups)
    return sorted({city for score, city in groups if score == best})


def _query(
    settings: Settings,
    term: str | None = None,
    location: str | None = None,
    day: date | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> Query:
    api: dict[str, str] = {}
    filters = []
    if term:
        api["term"] = term
    if location:
        api["location"] = location
        cities = ",".join(f"`{c}`" for c in _resolve_cities(settings, location))
        filters.append(f"city:=[{cities}]")
    starts_from = starts_before = None
    if date_from:
        api["date_from"] = date_from.isoformat()
        starts_from = _day_start(date_from)
    if date_to:
        api["date_to"] = date_to.isoformat()
        starts_before = _day_start(date_to + timedelta(days=1))
    if day:
        api["date"] = day.isoformat()
        starts_from = max(starts_from or 0, _day_start(day))
        starts_before = min(starts_before or 2**62, _day_start(day + timedelta(days=1)))
    if starts_from is not None:
        filters.append(f"date:>={starts_from}")
    if starts_before is not None:
        filters.append(f"date:<{starts_before}")
    api["per_page"] = str(PER_PAGE)
    direct: dict[str, Any] = {
        "q": term or "*",
        "query_by": QUERY_BY,
        "num_typos": 2,
        "prefix": "true",
        "sort_by": "_text_match:desc,date:asc" if term else "date:asc",
        "facet_by": "city",
        "max_facet_values": FACET_VALUES,
        "page": 1,
        "per_page": PER_PAGE,
        "include_fields": "view",
    }
    if filters:
        direct["filter_by"] = " && ".join(filters)
    return Query(
        api_path="/search?" + urlencode(api, quote_via=quote),
        typesense_path=f"/collections/{settings.typesense_collection}/documents/search?"
        + urlencode(direct, quote_via=quote),
    )


def build_queries(settings: Settings) -> list[Query]:
    with psycopg.connect(settings.database_url) as conn:
        cities = [
            r[0]
            for r in conn.execute(
                "SELECT v.city FROM events e JOIN venues v ON v.id = e.venue_id "
                "GROUP BY v.city ORDER BY count(*) DESC, v.city LIMIT 8"
            )
        ]
        performers = [
            r[0]
            for r in conn.execute(
                "SELECT p.name FROM events e JOIN performers p ON p.id = e.performer_id "
                "WHERE length(p.name) >= 8 GROUP BY p.name ORDER BY count(*) DESC, p.name LIMIT 4"
            )
        ]
        venues = [
            r[0]
            for r in conn.execute(
                "SELECT v.name FROM events e JOIN venues v ON v.id = e.venue_id "
                "GROUP BY v.name ORDER BY count(*) DESC, v.name LIMIT 2"
            )
        ]
        first_day = conn.execute("SELECT min(starts_at)::date FROM events").fetchone()[0]
    week = first_day + timedelta(days=30)
    month = first_day + timedelta(days=60)
    performer_word = max(performers[0].split(), key=len)
    # Typesense forgives a typo only in words of 4+ letters (two in 7+): misspell a long one.
    long_city = next((c for c in cities if len(c) >= 7), cities[0])
    return [
        _query(settings, term=performers[0]),
        _query(settings, term=_typo(performers[1])),
        _query(settings, term=performers[2][:4]),
        _query(settings, term=_typo(performer_word)),
        _query(settings, term=venues[0]),
        _query(settings, term=venues[1][:5]),
        _query(settings, location=cities[0]),
        _query(settings, location=_drop_letter(long_city)),
        _query(settings, location=cities[2].lower()),
        _query(settings, day=week),
        _query(settings, date_from=week, date_to=week + timedelta(days=6)),
        _query(settings, date_from=month, date_to=month + timedelta(days=30)),
        _query(settings, term=performers[3], location=cities[3]),
        _query(settings, location=cities[0], date_from=week, date_to=week + timedelta(days=13)),
        _query(settings, term=performer_word[:3], date_from=week, date_to=month),
        _query(settings),
    ]
