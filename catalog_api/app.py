"""The catalog_api application: read path, search and admin catalog writes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from catalog_api import openapi
from catalog_api.breaker import CircuitBreaker
from catalog_api.keys import (
    CITY_RESOLUTIONS_KEY,
    PG_BREAKER_KEY,
    TYPESENSE_BREAKER_KEY,
    TYPESENSE_KEY,
)
from catalog_api.read_routing import replicas_ctx
from catalog_api.ttl_cache import TtlCache
from catalog_api.typesense_reader import TypesenseReader
from ticketing.config import Settings
from ticketing.web import (
    HEALTH_CHECKS_KEY,
    SETTINGS_KEY,
    EngineState,
    create_base_app,
    pg_pool_ctx,
    serve_document,
)

SERVICE = "catalog_api"

# Long enough that an outage costs one slow request per interval, short enough that a
# recovered dependency is used again within seconds.
BREAKER_COOLDOWN_SECONDS = 2.0
CITY_RESOLUTION_TTL_SECONDS = 60.0


async def typesense_ctx(app: web.Application) -> AsyncIterator[None]:
    reader = TypesenseReader(app[SETTINGS_KEY])
    await reader.open()
    app[TYPESENSE_KEY] = reader
    app[HEALTH_CHECKS_KEY]["typesense"] = check_typesense
    yield
    await reader.close()


async def check_typesense(app: web.Application) -> EngineState:
    """Down only when no node is healthy: a cluster that lost a node still serves search."""
    return await app[TYPESENSE_KEY].state()


def create_app(settings: Settings) -> web.Application:
    app = create_base_app(settings, SERVICE)
    app[PG_BREAKER_KEY] = CircuitBreaker("postgres", BREAKER_COOLDOWN_SECONDS)
    app[TYPESENSE_BREAKER_KEY] = CircuitBreaker("typesense", BREAKER_COOLDOWN_SECONDS)
    app[CITY_RESOLUTIONS_KEY] = TtlCache(CITY_RESOLUTION_TTL_SECONDS, max_entries=1000)
    app.cleanup_ctx.append(pg_pool_ctx)
    app.cleanup_ctx.append(replicas_ctx)
    app.cleanup_ctx.append(typesense_ctx)
    for api in openapi.CATALOG_APIS:
        app.router.add_routes(api.table)
    serve_document(app, openapi.build_document)
    return app
