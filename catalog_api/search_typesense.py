"""Event search on Typesense (0.24.1): full text with typos and prefixes, filters, facets.

Every call goes through :func:`call_typesense`, so an outage is a DependencyDown that the
route turns into the Postgres fallback.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from catalog_api.dependencies import call_typesense
from catalog_api.keys import CITY_RESOLUTIONS_KEY, TYPESENSE_KEY
from catalog_api.search_query import SearchQuery
from ticketing.db.events import summary
from ticketing.search_index import view_of

# Field order is relevance order: an event-name match ranks above a performer or venue match.
QUERY_BY = "name,performer_name,venue_name"
FACET_VALUES = 20
MAX_CITY_MATCHES = 10


def empty_result(query: SearchQuery) -> dict[str, Any]:
    return {"found": 0, "page": query.page, "hits": [], "facets": {"city": []}}


def _quoted(value: str) -> str:
    # Backticks quote a filter value (commas inside stay literal); they cannot be escaped.
    return "`" + value.replace("`", "") + "`"


async def resolve_cities(app: web.Application, location: str) -> list[str]:
    """The canonical city values that ``location`` names, typo-tolerantly ("Berln" ->
    ["Berlin"]): the cities whose best match scores as well as the best city's."""
    key = location.casefold()
    cached: list[str] | None = app[CITY_RESOLUTIONS_KEY].get(key)
    if cached is not None:
        return cached
    params = city_resolution_params(location)
    cities = best_cities(await call_typesense(app, lambda: app[TYPESENSE_KEY].search(params)))
    # Only an exact resolution is stable: a typo or an unknown name may resolve differently
    # as soon as a new city's first event is indexed, which must show within seconds.
    if any(city.casefold() == key for city in cities):
        app[CITY_RESOLUTIONS_KEY].put(key, cities)
    return cities


def city_resolution_params(location: str) -> dict[str, Any]:
    return {
        "q": location,
        "query_by": "city",
        "group_by": "city",
        "group_limit": 1,
        "per_page": MAX_CITY_MATCHES,
        "include_fields": "city",
        "num_typos": 2,
    }


def best_cities(result: dict[str, Any]) -> list[str]:
    """The cities of a city-resolution search that match as well as the best one."""
    groups = [
        (group["hits"][0]["text_match"], group["group_key"][0])
        for group in result.get("grouped_hits", [])
        if group.get("hits")
    ]
    best = max((score for score, _ in groups), default=None)
    return sorted({city for score, city in groups if score == best})


def _filters(query: SearchQuery, cities: list[str] | None) -> str:
    parts = []
    if cities is not None:
        parts.append("city:=[" + ",".join(_quoted(c) for c in cities) + "]")
    if query.starts_from is not None:
        parts.append(f"date:>={int(query.starts_from.timestamp())}")
    if query.starts_before is not None:
        parts.append(f"date:<{int(query.starts_before.timestamp())}")
    if query.near is not None:
        near = query.near
        parts.append(f"location:({near.lat}, {near.lon}, {near.radius_km} km)")
    return " && ".join(parts)


async def search_typesense(app: web.Application, query: SearchQuery) -> dict[str, Any]:
    cities = None
    if query.location is not None:
        cities = await resolve_cities(app, query.location)
        if not cities:
            return empty_result(query)
    params = search_params(query, cities)
    result = await call_typesense(app, lambda: app[TYPESENSE_KEY].search(params))
    return _result(query, result)


def search_params(query: SearchQuery, cities: list[str] | None) -> dict[str, Any]:
    """The Typesense search request for a decoded /search (cities already resolved)."""
    params: dict[str, Any] = {
        "q": query.term or "*",
        "query_by": QUERY_BY,
        "num_typos": 2,
        "prefix": "true",
        "sort_by": "_text_match:desc,date:asc" if query.term else "date:asc",
        "facet_by": "city",
        "max_facet_values": FACET_VALUES,
        "page": query.page,
        "per_page": query.per_page,
        "include_fields": "view",
    }
    filter_by = _filters(query, cities)
    if filter_by:
        params["filter_by"] = filter_by
    return params


def _result(query: SearchQuery, result: dict[str, Any]) -> dict[str, Any]:
    city_counts: list[dict[str, Any]] = next(
        (f["counts"] for f in result.get("facet_counts", []) if f.get("field_name") == "city"),
        [],
    )
    return {
        "found": result.get("found", 0),
        "page": query.page,
        "hits": [
            summary(view_of(hit["document"]))
            for hit in result.get("hits", [])
            if "view" in hit.get("document", {})
        ],
        "facets": {"city": [{"value": c["value"], "count": c["count"]} for c in city_counts]},
    }
