"""Admin catalog writes (role ``admin``): venues, performers, events."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from catalog_api.admin_input import event_changes, event_input, performer_input, venue_input
from catalog_api.admin_store import create_event, insert_performer, insert_venue, update_event
from catalog_api.breaker import DependencyDown
from catalog_api.dependencies import backend_unavailable, postgres
from catalog_api.event_views import event_not_found, invalidate_views
from ticketing.auth import require_admin
from ticketing.db.events import fetch_event_views
from ticketing.validation import parse_id, read_json

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


async def _insert(
    request: web.Request,
    decode: Callable[[Any], Any],
    insert: Callable[[asyncpg.Connection, Any], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Authorise, decode strictly, then write: a bad request never reaches the database."""
    require_admin(request)
    item = decode(await read_json(request))
    try:
        async with postgres(request.app) as conn:
            return await insert(conn, item)
    except DependencyDown:
        raise backend_unavailable("The catalog") from None


@routes.post("/admin/venues")
async def post_venue(request: web.Request) -> web.Response:
    created = await _insert(request, venue_input, insert_venue)
    log.info("venue created venue_id=%s", created["id"])
    return web.json_response(created, status=201)


@routes.post("/admin/performers")
async def post_performer(request: web.Request) -> web.Response:
    created = await _insert(request, performer_input, insert_performer)
    log.info("performer created performer_id=%s", created["id"])
    return web.json_response(created, status=201)


@routes.post("/admin/events")
async def post_event(request: web.Request) -> web.Response:
    admin = require_admin(request)
    event = event_input(await read_json(request))
    try:
        async with postgres(request.app) as conn:
            event_id = await create_event(conn, event)
            views = await fetch_event_views(conn, [event_id])
    except DependencyDown:
        raise backend_unavailable("The catalog") from None
    log.info("event created event_id=%s by=%s", event_id, admin.user_id)
    return web.json_response(views[event_id], status=201)


@routes.patch("/admin/events/{event_id}")
async def patch_event(request: web.Request) -> web.Response:
    admin = require_admin(request)
    event_id = parse_id(request.match_info["event_id"], event_not_found())
    changes = event_changes(await read_json(request))
    try:
        async with postgres(request.app) as conn:
            await update_event(conn, event_id, changes)
            # After the commit, so the next reader fills the cache with the new view.
            await invalidate_views(request.app, [event_id])
            views = await fetch_event_views(conn, [event_id])
    except DependencyDown:
        raise backend_unavailable("The catalog") from None
    log.info("event edited event_id=%s fields=%s by=%s", event_id, sorted(changes), admin.user_id)
    return web.json_response(views[event_id])
