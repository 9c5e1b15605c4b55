"""``POST /webhooks/stripe``: check Stripe's signature here, apply the event in a worker.

Only a correctly signed event goes on, as a STRIPE_EVENT command whose request id is the
event id, so a replayed delivery is the same command. A 2xx tells Stripe to stop
delivering, so we answer one only once the worker committed the event (or already had it);
anything else and Stripe delivers again.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ticketing.messages import StripeEvent
from ticketing.payments import InvalidSignature, verify_webhook
from ticketing.problems import Problem
from ticketing.web import SETTINGS_KEY
from waitingroom.booking.commands import RPC_KEY
from waitingroom.queue.port import QUEUE_PORT_KEY

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.stripe_webhook")


async def stripe_webhook(request: web.Request) -> web.Response:
    payload = await request.read()
    secret = request.app[SETTINGS_KEY].stripe_webhook_secret
    try:
        event = verify_webhook(payload, request.headers.get("Stripe-Signature"), secret)
    except InvalidSignature as exc:
        log.warning("stripe webhook refused: %s", exc)
        raise Problem(400, "invalid_signature", "The Stripe-Signature does not match.") from None
    if not isinstance(event.get("id"), str):
        raise Problem(400, "validation_error", "A Stripe event has an id.")
    intent = (event.get("data") or {}).get("object") or {}
    # The hold's partition, where its confirm runs too; the event id when there is no hold.
    partition = str((intent.get("metadata") or {}).get("hold_id") or event["id"])
    command = StripeEvent(request_id="stripe:" + event["id"], user_id="stripe", event=event)
    reply = await request.app[RPC_KEY].call(command, partition)
    status, body = reply.status, reply.body
    if status >= 400:
        raise Problem(status, (body or {}).get("code", "backend_unavailable"), "Retry later.")
    hold_id = (intent.get("metadata") or {}).get("hold_id")
    queue = request.app.get(QUEUE_PORT_KEY)
    paid = event.get("type") == "payment_intent.succeeded"
    if paid and isinstance(hold_id, str) and queue is not None:
        # A late payment may have sold the last seats of a queued event (its confirm never
        # answered): the fans still in line hear it within a second, as after a confirm.
        await queue.recount_if_all_held(hold_id)
    return web.json_response(body or {"received": True}, status=200)


def stripe_webhook_routes() -> list[web.RouteDef]:
    return [web.post("/webhooks/stripe", stripe_webhook)]
