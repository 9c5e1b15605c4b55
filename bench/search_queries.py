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
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from aiohttp.test_utils import make_mocked_request

from catalog_api.search_query import parse_search_query
from catalog_api.search_typesense import best_cities, city_resolution_params, search_params
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


def _typesense_get(settings: Settings, path: str, params: dict[str, Any]) -> dict[str, Any]:
    url = f"{settings.typesense_url}{path}?{urlencode(params, quote_via=quote)}"
    request = urllib.request.Request(
        url, headers={"X-TYPESENSE-API-KEY": settings.typesense_api_key}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def _query(
    settings: Settings,
    term: str | None = None,
    location: str | None = None,
    day: date | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> Query:
    """The API path and, built by catalog_api's own functions, the Typesense request it makes
    (cities resolved once up front, as catalog_api's cache does in steady state)."""
    api: dict[str, str] = {"per_page": str(PER_PAGE)}
    for name, value in (
        ("term", term),
        ("location", location),
        ("date", day),
        ("date_from", date_from),
        ("date_to", date_to),
    ):
        if value is not None:
            api[name] = value if isinstance(value, str) else value.isoformat()
    api_path = "/search?" + urlencode(api, quote_via=quote)
    search_path = f"/collections/{settings.typesense_collection}/documents/search"
    query = parse_search_query(make_mocked_request("GET", api_path))
    cities = None
    if query.location is not None:
        cities = best_cities(
            _typesense_get(settings, search_path, city_resolution_params(query.location))
        )
    direct = {
        k: str(v).lower() if isinstance(v, bool) else v
        for k, v in search_params(query, cities).items()
    }
    return Query(
        api_path=api_path, typesense_path=search_path + "?" + urlencode(direct, quote_via=quote)
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
