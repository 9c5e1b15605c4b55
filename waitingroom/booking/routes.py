"""The booking routes of the front door: authenticate, validate, send the command to a
booking worker and return its answer as it is (the reserve is :mod:`.reserve`, the
confirm :mod:`.confirm`)."""

from __future__ import annotations

import uuid

from aiohttp import web

from ticketing import messages
from ticketing.api import Api, Empty, Ok, Problems
from ticketing.api.common import BAD_REQUEST, RATE_LIMITED, UNAUTHORIZED
from ticketing.auth import require_user
from waitingroom.booking.commands import request_id_of, roles_of, send_command, uuid_or_404
from waitingroom.booking.inputs import (
    BOOKING_ID,
    HOLD_ID,
    IDEMPOTENCY_KEY,
    TICKET_ID,
    MyBookingsQuery,
)
from waitingroom.booking.refusals import (
    BAD_IDEMPOTENCY_KEY,
    BOOKING_UNAVAILABLE,
    HOLD_NOT_FOUND,
    NOT_YOUR_HOLD,
)
from waitingroom.booking.shapes import Booking, BookingPage, TicketStatus
from waitingroom.queue.port import QUEUE_PORT_KEY

BOOKING_API = Api()


@BOOKING_API.delete(
    "/booking/holds/{hold_id}",
    summary="Release a hold; its tickets are available again at once",
    path_ids=[HOLD_ID],
    headers=[IDEMPOTENCY_KEY],
    auth=require_user,
    replies=[
        Empty(204, "Released (or already released)"),
        BAD_IDEMPOTENCY_KEY,
        UNAUTHORIZED,
        NOT_YOUR_HOLD,
        HOLD_NOT_FOUND,
        Problems(
            409,
            "the hold is paid for, it is a booking (hold_confirmed); it already ran out "
            "(hold_expired)",
            codes=("hold_confirmed", "hold_expired"),
        ),
        RATE_LIMITED,
        BOOKING_UNAVAILABLE,
    ],
)
async def release_hold(request: web.Request) -> web.Response:
    principal = require_user(request)
    hold_id = uuid_or_404(request.match_info["hold_id"], "hold_not_found", "No such hold.")
    request_id = request_id_of(request, principal, "release:" + hold_id)
    command = messages.Release(
        request_id=request_id, user_id=principal.user_id, roles=roles_of(principal), hold_id=hold_id
    )
    response = await send_command(request, command, hold_id)
    queue = request.app.get(QUEUE_PORT_KEY)
    if response.status == 204 and queue is not None:
        # Seats came back: if every seat left was held, admission may resume now.
        await queue.recount_if_all_held(hold_id)
    return response


@BOOKING_API.get(
    "/booking/{ticket_id}",
    summary="One ticket's booking status",
    description="hold_id, expires_at and booking_id are shown to their owner (and admins) only.",
    path_ids=[TICKET_ID],
    auth=require_user,
    replies=[
        Ok(200, "The ticket's status", shape=TicketStatus),
        UNAUTHORIZED,
        Problems(404, "no such ticket", codes=("ticket_not_found",)),
        RATE_LIMITED,
        BOOKING_UNAVAILABLE,
    ],
)
async def ticket_status(request: web.Request) -> web.Response:
    principal = require_user(request)
    ticket_id = int(request.match_info["ticket_id"])  # TICKET_ID checked it
    command = messages.TicketStatus(
        request_id=uuid.uuid4().hex,
        user_id=principal.user_id,
        roles=roles_of(principal),
        ticket_id=ticket_id,
    )
    return await send_command(request, command, ticket_id)


@BOOKING_API.get(
    "/bookings/{booking_id}",
    summary="One booking (its owner or an admin)",
    path_ids=[BOOKING_ID],
    auth=require_user,
    replies=[
        Ok(200, "The booking", shape=Booking),
        UNAUTHORIZED,
        Problems(404, "no such booking, or it is someone else's", codes=("booking_not_found",)),
        RATE_LIMITED,
        BOOKING_UNAVAILABLE,
    ],
)
async def get_booking(request: web.Request) -> web.Response:
    principal = require_user(request)
    booking_id = uuid_or_404(
        request.match_info["booking_id"], "booking_not_found", "No such booking."
    )
    command = messages.GetBooking(
        request_id=uuid.uuid4().hex,
        user_id=principal.user_id,
        roles=roles_of(principal),
        booking_id=booking_id,
    )
    return await send_command(request, command, booking_id)


@BOOKING_API.get(
    "/me/bookings",
    summary="The caller's bookings, newest first",
    query=MyBookingsQuery,
    auth=require_user,
    replies=[
        Ok(200, "A page of bookings", shape=BookingPage),
        BAD_REQUEST,
        UNAUTHORIZED,
        RATE_LIMITED,
        BOOKING_UNAVAILABLE,
    ],
)
async def my_bookings(request: web.Request, query: MyBookingsQuery) -> web.Response:
    principal = require_user(request)
    command = messages.ListBookings(
        request_id=uuid.uuid4().hex,
        user_id=principal.user_id,
        roles=roles_of(principal),
        limit=query.limit,
        cursor=query.cursor,
    )
    return await send_command(request, command, principal.user_id)
