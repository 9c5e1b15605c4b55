"""The payment routes of the front door: /webhooks/stripe checks signatures before a worker
sees anything; /booking/confirm needs a fan. The worker side is a recording fake here."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from aiohttp.test_utils import TestClient, TestServer

from ticketing.messages import BookingReply, StripeEvent
from ticketing.web import create_base_app
from waitingroom.booking.commands import RPC_KEY
from waitingroom.booking.confirm import CONFIRM_API
from waitingroom.booking.stripe_webhook import STRIPE_WEBHOOK_API


class FakeRpc:
    def __init__(self):
        self.calls = []

    async def call(self, command, key):
        self.calls.append((command, key))
        return BookingReply(200, {"received": True, "duplicate": False})


async def test_webhook(settings):
    app = create_base_app(settings, "waitingroom")
    rpc = FakeRpc()
    app[RPC_KEY] = rpc
    app.router.add_routes([*STRIPE_WEBHOOK_API.table, *CONFIRM_API.table])
    async with TestClient(TestServer(app)) as client:
        payload = json.dumps(
            {
                "id": "evt_9",
                "type": "payment_intent.succeeded",
                "data": {"object": {"metadata": {"hold_id": "h"}}},
            }
        ).encode()
        r = await client.post(
            "/webhooks/stripe", data=payload, headers={"Stripe-Signature": "t=1,v1=00"}
        )
        assert r.status == 400 and (await r.json())["code"] == "invalid_signature", await r.text()
        assert r.content_type == "application/problem+json"
        t = int(time.time())
        sig = hmac.new(
            settings.stripe_webhook_secret.encode(), b"%d.%s" % (t, payload), hashlib.sha256
        ).hexdigest()
        r = await client.post(
            "/webhooks/stripe", data=payload, headers={"Stripe-Signature": f"t={t},v1={sig}"}
        )
        assert r.status == 200, await r.text()
        command, key = rpc.calls[0]
        assert isinstance(command, StripeEvent) and command.event["id"] == "evt_9" and key == "h"
        r = await client.post("/booking/confirm", json={"hold_id": "x"})
        assert r.status == 401
