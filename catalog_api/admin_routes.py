"""Admin catalog writes (role ``admin``): venues, performers, events."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from aiohttp import web

from catalog_api.admin_bodies import EventCreate, EventEdit, PerformerCreate, VenueCreate
from catalog_api.admin_input import event_changes, event_input, performer_input, venue_input
from catalog_api.admin_store import create_event, insert_performer, insert_venue, update_event
from catalog_api.breaker import DependencyDown
from catalog_api.dependencies import backend_unavailable, postgres
from catalog_api.event_views import invalidate_views
from catalog_api.read_routing import remember_write
from catalog_api.refusals import (
    ADMIN_REFUSALS,
    CURRENCY_LOCKED,
    EVENT_ID,
    NO_EVENT_OR_PERFORMER,
    UNKNOWN_REFERENCE,
    event_not_found,
)
from catalog_api.shapes import Event, Performer, Venue
from ticketing.api import Api, Ok
from ticketing.auth import require_admin
from ticketing.db.events import fetch_event_views
from ticketing.validation import parse_id

log = logging.getLogger(__name__)

ADMIN_API = Api()

T = TypeVar("T")


async def _insert(
    request: web.Request,
    item: T,
    insert: Callable[[asyncpg.Connection, T], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    try:
        async with postgres(request.app) as conn:
            created = await insert(conn, item)
            await remember_write(request, conn)
            return created
    except DependencyDown:
        raise backend_unavailable("The catalog") from None


@ADMIN_API.post(
    "/admin/venues",
    summary="Create a venue with its seat map",
    body=VenueCreate,
    auth=require_admin,
    replies=[Ok(201, "Created", shape=Venue), *ADMIN_REFUSALS],
)
async def post_venue(request: web.Request, body: VenueCreate) -> web.Response:
    created = await _insert(request, venue_input(body), insert_venue)
    log.info("venue created venue_id=%s", created["id"])
    return web.json_response(created, status=201)


@ADMIN_API.post(
    "/admin/performers",
    summary="Create a performer",
    body=PerformerCreate,
    auth=require_admin,
    replies=[Ok(201, "Created", shape=Performer), *ADMIN_REFUSALS],
)
async def post_performer(request: web.Request, body: PerformerCreate) -> web.Response:
    created = await _insert(request, performer_input(body), insert_performer)
    log.info("performer created performer_id=%s", created["id"])
    return web.json_response(created, status=201)


@ADMIN_API.post(
    "/admin/events",
    summary="Create an event; one ticket per seat of the venue, priced by section",
    body=EventCreate,
    auth=require_admin,
    replies=[Ok(201, "Created", shape=Event), *ADMIN_REFUSALS, UNKNOWN_REFERENCE],
)
async def post_event(request: web.Request, body: EventCreate) -> web.Response:
    admin = require_admin(request)  # already checked: the principal, for the log
    try:
        async with postgres(request.app) as conn:
            event_id = await create_event(conn, event_input(body))
            await remember_write(request, conn)
            views = await fetch_event_views(conn, [event_id])
    except DependencyDown:
        raise backend_unavailable("The catalog") from None
    log.info("event created event_id=%s by=%s", event_id, admin.user_id)
    return web.json_response(views[event_id], status=201)


@ADMIN_API.patch(
    "/admin/events/{event_id}",
    summary="Edit an event (partial)",
    path_ids=[EVENT_ID],
    body=EventEdit,
    auth=require_admin,
    replies=[
        Ok(200, "The edited event", shape=Event),
        *ADMIN_REFUSALS,
        NO_EVENT_OR_PERFORMER,
        CURRENCY_LOCKED,
    ],
)
async def patch_event(request: web.Request, body: EventEdit) -> web.Response:
    admin = require_admin(request)
    event_id = parse_id(request.match_info["event_id"], event_not_found())
    changes = event_changes(body)
    try:
        async with postgres(request.app) as conn:
            await update_event(conn, event_id, changes)
            # Before the invalidation: once the view is gone, this admin reads it again
            # from where the edit is.
            await remember_write(request, conn)
            # After the commit, so the next reader fills the cache with the new view.
            await invalidate_views(request.app, [event_id])
            views = await fetch_event_views(conn, [event_id])
    except DependencyDown:
        raise backend_unavailable("The catalog") from None
    log.info("event edited event_id=%s fields=%s by=%s", event_id, sorted(changes), admin.user_id)
    return web.json_response(views[event_id])
