"""What a fan and Stripe do in the payment stories, one helper a step: a fan, a reserve
(or a hold of a new event), a confirm over HTTP; a webhook signed as Stripe signs it; a
charge a worker made and never wrote down."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any, NamedTuple

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.integration.booking.support import call, fan, make_event, ticket_ids
from tests.integration.payments.support import WEBHOOK_SECRET
from ticketing.config import Settings
from ticketing.domain.seating import Section
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


class Held(NamedTuple):
    """A fan's live hold: the fan's headers, the hold as the API answered it, its seats and
    the event (of the hold's own)."""

    fan: dict[str, str]
    hold: dict[str, Any]
    seats: list[int]
    event_id: int

    @property
    def id(self) -> uuid.UUID:
        return uuid.UUID(self.hold["hold_id"])


async def a_hold(api: TestClient, pool: asyncpg.Pool, settings: Settings, seats: int = 2) -> Held:
    """A new fan holds ``seats`` seats of a new four-seat event at PRICE each."""
    event_id = await make_event(pool, [Section("Stalls", 1, 4, PRICE)])
    ids = (await ticket_ids(pool, event_id))[:seats]
    _, me = a_fan(settings)
    return Held(me, await reserve(api, me, event_id, ids), ids, event_id)


class Answer(NamedTuple):
    """The front door's answer to a confirm: status, body, seconds it took, headers."""

    status: int
    body: Any
    took: float
    headers: Any


async def confirm(
    api: TestClient, headers: dict, hold_id: str, pm: str = VISA, key: str | None = None
) -> Answer:
    """A fan pays for a hold (with an Idempotency-Key when ``key`` is given); every refusal
    is a problem document."""
    if key is not None:
        headers = {**headers, "Idempotency-Key": key}
    body = {"hold_id": hold_id, "payment_method": pm}
    started = time.monotonic()
    status, data, resp_headers = await call(api, "POST", "/booking/confirm", headers, body)
    took = time.monotonic() - started
    if status >= 400:
        assert resp_headers["Content-Type"].startswith("application/problem+json"), data
    return Answer(status, data, took, resp_headers)


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
