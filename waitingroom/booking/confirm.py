"""``POST /booking/confirm``: validate, then let a booking worker charge and book."""

from __future__ import annotations

from aiohttp import web

from ticketing.auth import require_user
from ticketing.messages import Confirm
from ticketing.problems import validation_error
from ticketing.validation import read_json
from waitingroom.booking.commands import request_id_of, roles_of, send_command, uuid_or_404
from waitingroom.queue.port import QUEUE_PORT_KEY

MAX_PAYMENT_METHOD_LENGTH = 255


async def confirm(request: web.Request) -> web.Response:
    principal = require_user(request)
    body = await read_json(request)
    unknown = set(body) - {"hold_id", "payment_method"}
    if unknown:
        raise validation_error(f"Unknown fields: {', '.join(sorted(unknown))}.")
    method = body.get("payment_method")
    if not isinstance(method, str) or not 1 <= len(method) <= MAX_PAYMENT_METHOD_LENGTH:
        raise validation_error("payment_method must be a Stripe payment method id (pm_...).")
    if not isinstance(body.get("hold_id"), str):
        raise validation_error("hold_id must be a string.")
    hold_id = uuid_or_404(body["hold_id"], "hold_not_found", "No such hold.")
    command = Confirm(
        request_id=request_id_of(request, principal, "confirm"),
        user_id=principal.user_id,
        roles=roles_of(principal),
        hold_id=hold_id,
        payment_method=method,
    )
    response = await send_command(request, command, hold_id)
    queue = request.app.get(QUEUE_PORT_KEY)
    if response.status == 201 and queue is not None:
        # Booked: the fan's waiting-room session ends and its slot goes to the next fan.
        await queue.end_session_after_booking(principal.user_id, hold_id)
    return response


def confirm_routes() -> list[web.RouteDef]:
    return [web.post("/booking/confirm", confirm)]
