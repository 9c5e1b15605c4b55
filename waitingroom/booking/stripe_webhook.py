"""``POST /webhooks/stripe``: check Stripe's signature here, apply the event in a worker.

Only a correctly signed event goes on, as a STRIPE_EVENT command whose request id is the
event id, so a replayed delivery is the same command. A 2xx tells Stripe to stop
delivering, so we answer one only once the worker committed the event (or already had it);
anything else and Stripe delivers again.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ticketing.api import Api, Ok, Problems
from ticketing.api.common import RATE_LIMITED, RETRY_AFTER, TOO_LARGE
from ticketing.api.shapes import ValidationProblem
from ticketing.messages import StripeEvent
from ticketing.payments import InvalidSignature, verify_webhook
from ticketing.problems import RETRY_AFTER_SECONDS, Problem
from ticketing.web import SETTINGS_KEY
from waitingroom.booking.commands import RPC_KEY, input_refusal
from waitingroom.booking.inputs import STRIPE_SIGNATURE
from waitingroom.booking.shapes import StripeEventReceived
from waitingroom.queue.port import QUEUE_PORT_KEY

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.stripe_webhook")


STRIPE_WEBHOOK_API = Api()

# The body is read raw, not through a model: the signature is over its exact bytes.
_STRIPE_EVENT_BODY: dict[str, Any] = {
    "required": True,
    "description": "A Stripe event as Stripe sent it; its bytes must match Stripe-Signature.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["id"],
                "properties": {
                    "id": {"type": "string"},
                    "type": {"type": "string"},
                    "data": {"type": "object"},
                },
            }
        }
    },
}


@STRIPE_WEBHOOK_API.post(
    "/webhooks/stripe",
    summary="Stripe events (payment_intent.*), signature-checked",
    description="Applied by a booking worker; a 200 is answered only once the event is "
    "committed (or was already), so Stripe redelivers otherwise. Duplicates are ignored.",
    headers=[STRIPE_SIGNATURE],
    replies=[
        Ok(200, "Applied (or a duplicate)", shape=StripeEventReceived),
        Problems(
            400,
            "Stripe-Signature is missing or does not match (invalid_signature); a signed "
            "event without an id (validation_error)",
            codes=("invalid_signature", "validation_error"),
            extra=ValidationProblem,
        ),
        TOO_LARGE,
        RATE_LIMITED,
        Problems(
            503,
            "the event was not applied: RabbitMQ or the booking workers are down or did not "
            "answer in time; Stripe delivers it again",
            codes=("backend_unavailable",),
            headers=RETRY_AFTER,
        ),
    ],
    extra={"requestBody": _STRIPE_EVENT_BODY},
)
async def stripe_webhook(request: web.Request) -> web.Response:
    payload = await request.read()
    secret = request.app[SETTINGS_KEY].stripe_webhook_secret
    try:
        event = verify_webhook(payload, request.headers.get("Stripe-Signature"), secret)
    except InvalidSignature as exc:
        log.warning("stripe webhook refused: %s", exc)
        raise Problem(400, "invalid_signature", "The Stripe-Signature does not match.") from None
    if not isinstance(event.get("id"), str):
        raise input_refusal("body", "id", "A Stripe event has an id.")
    intent = (event.get("data") or {}).get("object") or {}
    # The hold's partition, where its confirm runs too; the event id when there is no hold.
    partition = str((intent.get("metadata") or {}).get("hold_id") or event["id"])
    command = StripeEvent(request_id="stripe:" + event["id"], user_id="stripe", event=event)
    reply = await request.app[RPC_KEY].call(command, partition)
    status, body = reply.status, reply.body
    if status >= 400:
        headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
        code = (body or {}).get("code", "backend_unavailable")
        raise Problem(status, code, "Retry later.", headers=headers)
    hold_id = (intent.get("metadata") or {}).get("hold_id")
    queue = request.app.get(QUEUE_PORT_KEY)
    paid = event.get("type") == "payment_intent.succeeded"
    if paid and isinstance(hold_id, str) and queue is not None:
        # A late payment may have sold the last seats of a queued event (its confirm never
        # answered): the fans still in line hear it within a second, as after a confirm.
        await queue.recount_if_all_held(hold_id)
    return web.json_response(body or {"received": True}, status=200)


async def stripe_signed(request: web.Request) -> bool:
    """Whether Stripe signed this delivery: asked before the per-address limit, which a
    signed delivery skips (ticketing.ratelimit.SIGNED_ROUTES_KEY) and an unsigned one does
    not. The handler checks again, as the one that refuses."""
    signature = request.headers.get("Stripe-Signature")
    if not signature:
        return False
    secret = request.app[SETTINGS_KEY].stripe_webhook_secret
    try:
        verify_webhook(await request.read(), signature, secret)
    except InvalidSignature:
        return False
    return True
