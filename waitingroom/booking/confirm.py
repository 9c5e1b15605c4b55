"""``POST /booking/confirm``: validate, then let a booking worker charge and book."""

from __future__ import annotations

from aiohttp import web

from ticketing.api import Api, Ok, Problems
from ticketing.api.common import (
    BAD_REQUEST,
    RATE_LIMITED,
    RETRY_AFTER,
    TOO_LARGE,
    UNAUTHORIZED,
)
from ticketing.auth import require_user
from ticketing.messages import Confirm
from waitingroom.booking.commands import request_id_of, roles_of, send_command, uuid_or_404
from waitingroom.booking.inputs import IDEMPOTENCY_KEY, ConfirmRequest
from waitingroom.booking.refusals import BOOKING_UNAVAILABLE, HOLD_NOT_FOUND, NOT_YOUR_HOLD
from waitingroom.booking.shapes import Booking, ConfirmConflict, PaymentFailed
from waitingroom.queue.port import QUEUE_PORT_KEY

CONFIRM_API = Api()


@CONFIRM_API.post(
    "/booking/confirm",
    summary="Pay for a hold; the booking is created once the payment succeeds",
    description="Confirming the same hold twice returns the same booking and charges once. "
    "A payment that succeeds after the hold expired is honoured if the seats are still "
    "free, otherwise refunded automatically.",
    body=ConfirmRequest,
    headers=[IDEMPOTENCY_KEY],
    auth=require_user,
    replies=[
        Ok(201, "The booking", shape=Booking),
        BAD_REQUEST,
        UNAUTHORIZED,
        Problems(
            402,
            "the payment was declined; the hold is kept until it expires, so the fan can "
            "retry with another payment method",
            codes=("payment_failed",),
            extra=PaymentFailed,
        ),
        NOT_YOUR_HOLD,
        HOLD_NOT_FOUND,
        Problems(
            409,
            "the hold ran out; a payment taken meanwhile is refunded when its seats are gone "
            "(hold_expired); another confirm of this hold is still running, retry "
            "(payment_in_progress); the event's on_sale_at was moved later than now, nothing "
            "was charged (not_on_sale)",
            codes=("hold_expired", "payment_in_progress", "not_on_sale"),
            extra=ConfirmConflict,
        ),
        TOO_LARGE,
        RATE_LIMITED,
        Problems(
            503,
            f"{BOOKING_UNAVAILABLE.description} Or Stripe did not answer: the hold is kept, "
            "and a retry with the same Idempotency-Key completes the payment or tells how "
            "it ended.",
            codes=("backend_unavailable",),
            headers=RETRY_AFTER,
        ),
    ],
)
async def confirm(request: web.Request, body: ConfirmRequest) -> web.Response:
    principal = require_user(request)
    hold_id = uuid_or_404(body.hold_id, "hold_not_found", "No such hold.")
    command = Confirm(
        request_id=request_id_of(request, principal, "confirm"),
        user_id=principal.user_id,
        roles=roles_of(principal),
        hold_id=hold_id,
        payment_method=body.payment_method,
    )
    response = await send_command(request, command, hold_id)
    queue = request.app.get(QUEUE_PORT_KEY)
    if response.status == 201 and queue is not None:
        # Booked: the fan's waiting-room session ends and its slot goes to the next fan.
        await queue.end_session_after_booking(principal.user_id, hold_id)
    return response
