"""Event views, read through the Redis cache, with the degraded paths when Postgres is down.

Order of sources for one view: Redis cache, then Postgres (a replica within the lag bound,
else the primary; the result is cached), then the Typesense document (which carries the
full view) when Postgres is unreachable. An admin reading their own write skips the cache.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiohttp import web

from catalog_api.breaker import DependencyDown
from catalog_api.dependencies import (
    REDIS_UNAVAILABLE,
    backend_unavailable,
    call_typesense,
    count_dependency_error,
)
from catalog_api.keys import TYPESENSE_KEY
from catalog_api.read_routing import ReadPlan, read_postgres, view_ttl
from catalog_api.refusals import event_not_found
from catalog_api.typesense_reader import DocumentNotFound
from ticketing import cache
from ticketing.db.events import fetch_event_views
from ticketing.search_index import view_of
from ticketing.web import REDIS_KEY, SETTINGS_KEY

log = logging.getLogger(__name__)

View = dict[str, Any]

FROM_CACHE = "cache"
FROM_DATABASE = "database"
FROM_SEARCH_INDEX = "search-index"


async def cached_views(app: web.Application, event_ids: Sequence[int]) -> dict[int, View]:
    """Whatever the cache holds; a Redis outage is a miss, not an error."""
    settings = app[SETTINGS_KEY]
    try:
        return await cache.get_views(app[REDIS_KEY], settings.redis_prefix, event_ids)
    except REDIS_UNAVAILABLE as exc:
        log.warning("view cache read failed: %s", type(exc).__name__)
        count_dependency_error(app, "redis")
        return {}


async def cache_views(app: web.Application, views: Sequence[View], from_replica: bool) -> None:
    settings = app[SETTINGS_KEY]
    ttl = view_ttl(settings, from_replica)
    try:
        await cache.put_views(app[REDIS_KEY], settings.redis_prefix, views, ttl)
    except REDIS_UNAVAILABLE as exc:
        log.warning("view cache write failed: %s", type(exc).__name__)
        count_dependency_error(app, "redis")


async def invalidate_views(app: web.Application, event_ids: Sequence[int]) -> None:
    settings = app[SETTINGS_KEY]
    try:
        await cache.invalidate(app[REDIS_KEY], settings.redis_prefix, event_ids)
    except REDIS_UNAVAILABLE as exc:
        # The TTL and search_sync's invalidation still bound the staleness.
        log.warning("view cache invalidation failed for %s: %s", event_ids, type(exc).__name__)
        count_dependency_error(app, "redis")


async def load_views(
    app: web.Application, conn: asyncpg.Connection, event_ids: Sequence[int], plan: ReadPlan
) -> tuple[dict[int, View], dict[int, View]]:
    """Views of these events (those that exist), from the cache when the plan allows,
    the misses from ``conn``; and those read from ``conn``, for the caller to cache."""
    views = await cached_views(app, event_ids) if plan.use_cache else {}
    missing = [i for i in event_ids if i not in views]
    fresh = await fetch_event_views(conn, missing) if missing else {}
    return views | fresh, fresh


async def load_view(app: web.Application, event_id: int, plan: ReadPlan) -> tuple[View, str]:
    """One full view and where it came from; 404 when it does not exist, 503 when no
    source can answer."""
    if plan.use_cache:
        cached = await cached_views(app, [event_id])
        if event_id in cached:
            return cached[event_id], FROM_CACHE
    try:
        views, from_replica = await read_postgres(
            app, plan, lambda conn: fetch_event_views(conn, [event_id])
        )
    except DependencyDown:
        return await _view_from_search_index(app, event_id), FROM_SEARCH_INDEX
    if event_id not in views:
        raise event_not_found()
    await cache_views(app, [views[event_id]], from_replica)
    return views[event_id], FROM_DATABASE


async def _view_from_search_index(app: web.Application, event_id: int) -> View:
    reader = app[TYPESENSE_KEY]
    try:
        found = await call_typesense(app, lambda: reader.document(str(event_id)), not_found_ok=True)
    except DocumentNotFound:
        raise event_not_found() from None
    except DependencyDown:
        raise backend_unavailable("The catalog") from None
    return view_of(found)
