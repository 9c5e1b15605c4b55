"""The booking routes of the front door: authenticate, validate, send the command to a
booking worker and return its answer as it is (the reserve is :mod:`.reserve`, the
confirm :mod:`.confirm`)."""

from __future__ import annotations

import uuid

from aiohttp import web

from ticketing.auth import require_user
from ticketing.messages import GetBooking, ListBookings, Release, TicketStatus
from ticketing.problems import Problem
from ticketing.validation import MAX_ID, decode_cursor, query_int
from waitingroom.booking.commands import request_id_of, roles_of, send_command, uuid_or_404
from waitingroom.booking.reserve import reserve, reserve_latency_recorded
from waitingroom.queue.port import QUEUE_PORT_KEY


async def release_hold(request: web.Request) -> web.Response:
    principal = require_user(request)
    hold_id = uuid_or_404(request.match_info["hold_id"], "hold_not_found", "No such hold.")
    request_id = request_id_of(request, principal, "release:" + hold_id)
    command = Release(
        request_id=request_id, user_id=principal.user_id, roles=roles_of(principal), hold_id=hold_id
    )
    response = await send_command(request, command, hold_id)
    queue = request.app.get(QUEUE_PORT_KEY)
    if response.status == 204 and queue is not None:
        # Seats came back: if every seat left was held, admission may resume now.
        await queue.recount_if_all_held(hold_id)
    return response


async def ticket_status(request: web.Request) -> web.Response:
    principal = require_user(request)
    raw = request.match_info["ticket_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not 1 <= int(raw) <= MAX_ID:
        raise Problem(404, "ticket_not_found", "No such ticket.")
    ticket_id = int(raw)
    command = TicketStatus(
        request_id=uuid.uuid4().hex,
        user_id=principal.user_id,
        roles=roles_of(principal),
        ticket_id=ticket_id,
    )
    return await send_command(request, command, ticket_id)


async def get_booking(request: web.Request) -> web.Response:
    principal = require_user(request)
    booking_id = uuid_or_404(
        request.match_info["booking_id"], "booking_not_found", "No such booking."
    )
    command = GetBooking(
        request_id=uuid.uuid4().hex,
        user_id=principal.user_id,
        roles=roles_of(principal),
        booking_id=booking_id,
    )
    return await send_command(request, command, booking_id)


async def my_bookings(request: web.Request) -> web.Response:
    principal = require_user(request)
    limit = query_int(request, "limit", 20, 1, 100)
    cursor = decode_cursor(request, (str, str))
    command = ListBookings(
        request_id=uuid.uuid4().hex,
        user_id=principal.user_id,
        roles=roles_of(principal),
        limit=limit,
        cursor=None if cursor is None else tuple(cursor),
    )
    return await send_command(request, command, principal.user_id)


def booking_routes() -> list[web.RouteDef]:
    return [
        web.post("/booking/reserve", reserve_latency_recorded(reserve)),
        web.delete("/booking/holds/{hold_id}", release_hold),
        web.get("/booking/{ticket_id}", ticket_status),
        web.get("/bookings/{booking_id}", get_booking),
        web.get("/me/bookings", my_bookings),
    ]
