"""Stripe's webhooks and the per-address limit, on the real front door and a real booking
worker: Stripe delivers in bursts from a few addresses, so a delivery it signed is never
limited by address; one without a valid signature is checked first and counts like any
other anonymous request, so forging costs as much as anything else."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.integration.booking.support import open_client, own_vhost, running_worker
from tests.integration.payments.steps import stripe_signature
from tests.support import settings_with
from ticketing.config import Settings

SECRET = "whsec_limits_" + uuid.uuid4().hex
STRIPE = {"X-Real-IP": "198.51.100.40"}  # one of Stripe's few addresses, as the gateway says


@pytest.fixture(scope="module")
def vhost(booking_settings: Settings) -> Iterator[str]:
    yield from own_vhost(booking_settings.amqp_url)


@pytest.fixture(scope="module")
def limited(booking_settings: Settings, vhost: str) -> Settings:
    return settings_with(
        booking_settings,
        amqp_url=vhost,
        stripe_webhook_secret=SECRET,
        rate_limit_per_minute=60,
        rate_limit_burst=2,
        redis_prefix=f"{booking_settings.redis_prefix}hook-{time.time_ns()}:",
    )


@pytest.fixture(scope="module")
async def api(limited: Settings, pool: asyncpg.Pool) -> AsyncIterator[TestClient]:
    async with running_worker(limited, pool):
        client = await open_client(limited)
        try:
            yield client
        finally:
            await client.close()


def _event() -> bytes:
    """An event type the platform records and does not act on: 200 once recorded."""
    intent = {"id": "pi_" + uuid.uuid4().hex, "object": "payment_intent", "metadata": {}}
    event = {
        "id": "evt_" + uuid.uuid4().hex,
        "object": "event",
        "type": "charge.refunded",
        "created": int(time.time()),
        "data": {"object": intent},
    }
    return json.dumps(event).encode()


async def _deliver(api: TestClient, payload: bytes, signature: str | None) -> int:
    headers = {**STRIPE, "Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    async with api.post("/webhooks/stripe", data=payload, headers=headers) as resp:
        return resp.status


async def test_signed_deliveries_are_never_limited_by_address(api: TestClient):
    # Three times the burst, from one address: every one applied.
    statuses = []
    for _ in range(6):
        payload = _event()
        statuses.append(await _deliver(api, payload, stripe_signature(payload, SECRET)))
    assert statuses == [200] * 6


async def test_a_bad_signature_counts_against_the_address(api: TestClient):
    """Forged, missing and wrongly keyed signatures from Stripe's address: refused (400)
    until the address's burst is spent, then 429. Control: a signed delivery from the same
    address, limited as it now is, is still applied."""
    payload = _event()
    forged = [
        stripe_signature(payload, "whsec_not_ours"),
        None,
        stripe_signature(payload, "whsec_not_ours_either"),
        stripe_signature(payload + b" ", SECRET),  # signed, but not these bytes
    ]
    statuses = [await _deliver(api, payload, signature) for signature in forged]
    assert statuses == [400, 400, 429, 429]
    assert await _deliver(api, payload, stripe_signature(payload, SECRET)) == 200
    # ... and another address has a burst of its own.
    headers = {"X-Real-IP": "198.51.100.41", "Stripe-Signature": forged[0] or ""}
    async with api.post("/webhooks/stripe", data=payload, headers=headers) as resp:
        assert resp.status == 400
