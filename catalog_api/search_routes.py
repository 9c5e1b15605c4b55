"""``GET /search``: Typesense first; Postgres when Typesense cannot answer."""

from __future__ import annotations

from aiohttp import web

from catalog_api.breaker import DependencyDown
from catalog_api.dependencies import backend_unavailable, count_degraded
from catalog_api.event_views import cache_views
from catalog_api.query_params import EventSearchQuery
from catalog_api.read_routing import read_plan, read_postgres
from catalog_api.search_postgres import search_postgres
from catalog_api.search_query import search_query
from catalog_api.search_typesense import search_typesense
from catalog_api.shapes import SearchResult
from ticketing.api import Api, Ok
from ticketing.api.common import BAD_REQUEST, RATE_LIMITED, UNAVAILABLE

SEARCH_API = Api()

DEGRADED_HEADER = "X-Search-Degraded"


@SEARCH_API.get(
    "/search",
    summary="Full-text event search (typo-tolerant, by prefix) with filters and facets",
    description="Served by Typesense; when it is unavailable, by a Postgres query with the "
    "same filters and shape, flagged X-Search-Degraded.",
    query=EventSearchQuery,
    replies=[
        Ok(
            200,
            "Search results",
            headers=(
                (
                    DEGRADED_HEADER,
                    "typesense-unavailable when Postgres answered because Typesense could not.",
                ),
            ),
            shape=SearchResult,
        ),
        BAD_REQUEST,
        RATE_LIMITED,
        UNAVAILABLE,
    ],
)
async def search(request: web.Request, query: EventSearchQuery) -> web.Response:
    wanted = search_query(query)
    try:
        result = await search_typesense(request.app, wanted)
    except DependencyDown:
        pass
    else:
        return web.json_response(result)
    plan = await read_plan(request)
    try:
        (result, fresh), from_replica = await read_postgres(
            request.app, plan, lambda conn: search_postgres(request.app, conn, wanted, plan)
        )
    except DependencyDown:
        raise backend_unavailable("Search") from None
    await cache_views(request.app, list(fresh.values()), from_replica)
    count_degraded(request, "postgres")
    return web.json_response(result, headers={DEGRADED_HEADER: "typesense-unavailable"})
