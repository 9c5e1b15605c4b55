"""``GET /search``: Typesense first; Postgres when Typesense cannot answer."""

from __future__ import annotations

from aiohttp import web

from catalog_api.breaker import DependencyDown
from catalog_api.dependencies import backend_unavailable, count_degraded, postgres
from catalog_api.search_postgres import search_postgres
from catalog_api.search_query import parse_search_query
from catalog_api.search_typesense import search_typesense

routes = web.RouteTableDef()

DEGRADED_HEADER = "X-Search-Degraded"


@routes.get("/search")
async def search(request: web.Request) -> web.Response:
    query = parse_search_query(request)
    try:
        result = await search_typesense(request.app, query)
    except DependencyDown:
        pass
    else:
        return web.json_response(result)
    try:
        async with postgres(request.app) as conn:
            result = await search_postgres(request.app, conn, query)
    except DependencyDown:
        raise backend_unavailable("Search") from None
    count_degraded(request, "postgres")
    return web.json_response(result, headers={DEGRADED_HEADER: "typesense-unavailable"})
