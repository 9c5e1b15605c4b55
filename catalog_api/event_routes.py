"""HTTP handlers of the catalog read path: event list, event view, ticket list."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from catalog_api.breaker import DependencyDown
from catalog_api.dependencies import backend_unavailable, count_degraded, postgres
from catalog_api.event_views import (
    FROM_CACHE,
    FROM_SEARCH_INDEX,
    event_not_found,
    load_view,
    load_views,
)
from catalog_api.keys import PG_BREAKER_KEY
from catalog_api.queries import EventFilter, event_exists, list_events, list_tickets
from ticketing.db.events import summary
from ticketing.domain.booking_shapes import Ticket
from ticketing.problems import validation_error
from ticketing.validation import (
    decode_cursor,
    encode_cursor,
    parse_id,
    query_date,
    query_int,
    query_optional_int,
)

routes = web.RouteTableDef()

TICKET_STATUSES = ("available", "reserved", "booked")
MAX_TEXT_PARAM = 200


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def query_text(request: web.Request, name: str, max_length: int = MAX_TEXT_PARAM) -> str | None:
    raw = request.query.get(name)
    if raw is None or not raw.strip():
        return None
    if len(raw) > max_length:
        raise validation_error(f"{name} must be at most {max_length} characters.", parameter=name)
    return raw.strip()


def query_day_range(request: web.Request) -> tuple[datetime | None, datetime | None]:
    """``date_from``/``date_to`` as [start, end) instants covering whole UTC days."""
    date_from = query_date(request, "date_from")
    date_to = query_date(request, "date_to")
    if date_from and date_to and date_from > date_to:
        raise validation_error("date_from must not be after date_to.", parameter="date_from")
    return (
        day_start(date_from) if date_from else None,
        day_start(date_to + timedelta(days=1)) if date_to else None,
    )


def _event_cursor(request: web.Request) -> tuple[datetime, int] | None:
    decoded = decode_cursor(request, (str, int))
    if decoded is None:
        return None
    try:
        starts_at = datetime.fromisoformat(decoded[0])
    except ValueError as exc:
        raise validation_error("cursor is not valid.", parameter="cursor") from exc
    if starts_at.tzinfo is None:
        raise validation_error("cursor is not valid.", parameter="cursor")
    return starts_at, decoded[1]


@routes.get("/events")
async def get_events(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 20, 1, 100)
    starts_from, starts_before = query_day_range(request)
    filters = EventFilter(
        city=query_text(request, "city", 100),
        starts_from=starts_from,
        starts_before=starts_before,
        performer_id=query_optional_int(request, "performer_id"),
    )
    after = _event_cursor(request)
    try:
        async with postgres(request.app) as conn:
            rows = await list_events(conn, filters, after, limit + 1)
            page = rows[:limit]
            views = await load_views(request.app, conn, [r["id"] for r in page])
    except DependencyDown:
        raise backend_unavailable("The event list") from None
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor(last["starts_at"].isoformat(), last["id"])
    # An event deleted between the two queries simply drops out of the page.
    items = [summary(views[r["id"]]) for r in page if r["id"] in views]
    return web.json_response({"items": items, "next_cursor": next_cursor})


@routes.get("/events/{event_id}")
@routes.get("/event/{event_id}")
async def get_event(request: web.Request) -> web.Response:
    event_id = parse_id(request.match_info["event_id"], event_not_found())
    view, source = await load_view(request.app, event_id)
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


@routes.get("/events/{event_id}/tickets")
async def get_tickets(request: web.Request) -> web.Response:
    event_id = parse_id(request.match_info["event_id"], event_not_found())
    status = query_text(request, "status", 20)
    if status is not None and status not in TICKET_STATUSES:
        raise validation_error(
            "status must be one of: " + ", ".join(TICKET_STATUSES) + ".", parameter="status"
        )
    section = query_text(request, "section", 50)
    limit = query_int(request, "limit", 20, 1, 500)
    cursor = decode_cursor(request, (int,))
    after_id = cursor[0] if cursor else 0
    try:
        async with postgres(request.app) as conn:
            rows = await list_tickets(conn, event_id, status, section, after_id, limit + 1)
            if not rows and not await event_exists(conn, event_id):
                raise event_not_found()
    except DependencyDown:
        raise backend_unavailable("Seat availability") from None
    page = rows[:limit]
    items = [_listed(r) for r in page]
    next_cursor = encode_cursor(page[-1]["id"]) if len(rows) > limit else None
    return web.json_response({"items": items, "next_cursor": next_cursor})
