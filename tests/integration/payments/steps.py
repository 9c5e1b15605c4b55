"""What a fan and Stripe do in the payment stories, one helper a step: a fan, a reserve, a
confirm over HTTP; a webhook signed as Stripe signs it; a charge a worker made and never
wrote down."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.integration.booking.support import call, fan
from tests.integration.payments.support import WEBHOOK_SECRET
from ticketing.config import Settings
from ticketing.payments import Payments, PaymentSucceeded, intent_metadata

PRICE = 3000
VISA = "pm_card_visa"
DECLINED = "pm_card_chargeCustomerFail"


def a_fan(settings: Settings) -> tuple[str, dict[str, str]]:
    name = "fan-" + uuid.uuid4().hex[:8]
    return name, fan(settings, name)


async def reserve(
    api: TestClient, headers: dict, event_id: int, tickets: list[int]
) -> dict[str, Any]:
    status, hold, _ = await call(
        api, "POST", "/booking/reserve", headers, {"event_id": event_id, "ticket_ids": tickets}
    )
    assert status == 201, hold
    return hold


async def confirm(
    api: TestClient, headers: dict, hold_id: str, pm: str = VISA, key: str | None = None
) -> tuple[int, Any]:
    if key is not None:
        headers = {**headers, "Idempotency-Key": key}
    body = {"hold_id": hold_id, "payment_method": pm}
    status, data, resp_headers = await call(api, "POST", "/booking/confirm", headers, body)
    if status >= 400:
        assert resp_headers["Content-Type"].startswith("application/problem+json"), data
    return status, data


def stripe_signature(payload: bytes, secret: str = WEBHOOK_SECRET) -> str:
    """Stripe-Signature as Stripe builds it: t=<unix time>,v1=HMAC-SHA256(secret, t.payload)."""
    at = int(time.time())
    digest = hmac.new(secret.encode(), b"%d.%s" % (at, payload), hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


async def post_webhook(api: TestClient, event: dict, signature: str | None = None) -> Any:
    payload = json.dumps(event).encode()
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": signature or stripe_signature(payload),
    }
    async with api.post("/webhooks/stripe", data=payload, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def pay_behind_our_back(
    pool: asyncpg.Pool, stripe_client: Payments, hold: dict[str, Any]
) -> dict[str, Any]:
    """A worker that charged the card and died before writing it down: a 'pending' attempt
    and a succeeded PaymentIntent. Returns the payment_intent.succeeded event Stripe sends."""
    attempt_id = uuid.uuid4()
    key = f"confirm:{hold['hold_id']}:lost-{attempt_id}"
    await pool.execute(
        "INSERT INTO payments (id, hold_id, idempotency_key, amount_cents, currency, status)"
        " VALUES ($1, $2, $3, $4, 'EUR', 'pending')",
        attempt_id,
        uuid.UUID(hold["hold_id"]),
        key,
        hold["amount_cents"],
    )
    seats = [t["id"] for t in hold["tickets"]]
    outcome = await stripe_client.charge(
        idempotency_key=key,
        amount_cents=hold["amount_cents"],
        currency="EUR",
        payment_method=VISA,
        metadata=intent_metadata(hold["hold_id"], str(attempt_id), seats),
    )
    assert isinstance(outcome, PaymentSucceeded)
    intent = (await stripe_client.find_attempt(str(attempt_id))) or pytest.fail("no intent")
    return {
        "id": "evt_" + uuid.uuid4().hex,
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": intent.payment_intent_id,
                "object": "payment_intent",
                "status": intent.status,
                "amount": hold["amount_cents"],
                "metadata": intent.metadata,
            }
        },
    }
