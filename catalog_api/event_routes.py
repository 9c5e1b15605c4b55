"""HTTP handlers of the catalog read path: event list, event view, ticket list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from catalog_api.breaker import DependencyDown
from catalog_api.dependencies import backend_unavailable, count_degraded
from catalog_api.event_views import (
    FROM_CACHE,
    FROM_SEARCH_INDEX,
    View,
    cache_views,
    load_view,
    load_views,
)
from catalog_api.keys import PG_BREAKER_KEY
from catalog_api.queries import EventFilter, event_exists, list_events, list_tickets
from catalog_api.query_params import EventListQuery, TicketListQuery, day_range
from catalog_api.read_routing import read_plan, read_postgres
from catalog_api.refusals import EVENT_ID, NO_EVENT, event_not_found
from catalog_api.shapes import Event, EventPage, TicketPage
from ticketing.api import Api, Ok
from ticketing.api.common import BAD_REQUEST, RATE_LIMITED, UNAVAILABLE
from ticketing.db.events import summary
from ticketing.domain.booking_shapes import Ticket
from ticketing.validation import bad_cursor, encode_cursor, parse_cursor, parse_id

EVENTS_API = Api()

Views = dict[int, View]

SERVED_FROM = (
    (
        "X-Served-From",
        "Which source answered: database, cache or search-index (the last two keep views "
        "up while Postgres is down).",
    ),
)


def _event_cursor(raw: str | None) -> tuple[datetime, int] | None:
    decoded = parse_cursor(raw, (str, int))
    if decoded is None:
        return None
    try:
        starts_at = datetime.fromisoformat(decoded[0])
    except ValueError:
        raise bad_cursor() from None
    if starts_at.tzinfo is None:
        raise bad_cursor()
    return starts_at, decoded[1]


@EVENTS_API.get(
    "/events",
    summary="List events by date, then id",
    query=EventListQuery,
    replies=[Ok(200, "A page of events", shape=EventPage), BAD_REQUEST, RATE_LIMITED, UNAVAILABLE],
)
async def get_events(request: web.Request, query: EventListQuery) -> web.Response:
    limit = query.limit
    starts_from, starts_before = day_range(query.date_from, query.date_to)
    filters = EventFilter(
        city=query.city,
        starts_from=starts_from,
        starts_before=starts_before,
        performer_id=query.performer_id,
    )
    after = _event_cursor(query.cursor)
    plan = await read_plan(request)

    async def read(conn: asyncpg.Connection) -> tuple[list[asyncpg.Record], Views, Views]:
        rows = await list_events(conn, filters, after, limit + 1)
        return rows, *await load_views(request.app, conn, [r["id"] for r in rows[:limit]], plan)

    try:
        (rows, views, fresh), from_replica = await read_postgres(request.app, plan, read)
    except DependencyDown:
        raise backend_unavailable("The event list") from None
    await cache_views(request.app, list(fresh.values()), from_replica)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor(last["starts_at"].isoformat(), last["id"])
    # An event deleted between the two queries simply drops out of the page.
    items = [summary(views[r["id"]]) for r in page if r["id"] in views]
    return web.json_response({"items": items, "next_cursor": next_cursor})


_EVENT_VIEW = {
    "summary": "One event with availability and price tiers",
    "path_ids": [EVENT_ID],
    "replies": [
        Ok(200, "The event", headers=SERVED_FROM, shape=Event),
        NO_EVENT,
        RATE_LIMITED,
        UNAVAILABLE,
    ],
}


@EVENTS_API.get("/events/{event_id}", **_EVENT_VIEW)
@EVENTS_API.get("/event/{event_id}", **_EVENT_VIEW)
async def get_event(request: web.Request) -> web.Response:
    event_id = parse_id(request.match_info["event_id"], event_not_found())
    view, source = await load_view(request.app, event_id, await read_plan(request))
    if source == FROM_SEARCH_INDEX or (
        source == FROM_CACHE and request.app[PG_BREAKER_KEY].is_open
    ):
        count_degraded(request, source)
    return web.json_response(view, headers={"X-Served-From": source})


def _listed(row: asyncpg.Record) -> dict[str, Any]:
    """A seat as the ticket list shows it: the domain's ticket, and its status."""
    item = Ticket.of(row).to_json()
    item["status"] = row["status"]
    return item


@EVENTS_API.get(
    "/events/{event_id}/tickets",
    summary="The event's tickets (seats), in seat-map order",
    path_ids=[EVENT_ID],
    query=TicketListQuery,
    replies=[
        Ok(200, "A page of tickets", shape=TicketPage),
        BAD_REQUEST,
        NO_EVENT,
        RATE_LIMITED,
        UNAVAILABLE,
    ],
)
async def get_tickets(request: web.Request, query: TicketListQuery) -> web.Response:
    event_id = parse_id(request.match_info["event_id"], event_not_found())
    limit = query.limit
    cursor = parse_cursor(query.cursor, (int,))
    after_id = cursor[0] if cursor else 0

    async def read(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        rows = await list_tickets(conn, event_id, query.status, query.section, after_id, limit + 1)
        if not rows and not await event_exists(conn, event_id):
            raise event_not_found()
        return rows

    try:
        rows, _ = await read_postgres(request.app, await read_plan(request), read)
    except DependencyDown:
        raise backend_unavailable("Seat availability") from None
    page = rows[:limit]
    items = [_listed(r) for r in page]
    next_cursor = encode_cursor(page[-1]["id"]) if len(rows) > limit else None
    return web.json_response({"items": items, "next_cursor": next_cursor})
