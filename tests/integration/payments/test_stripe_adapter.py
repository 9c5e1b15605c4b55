"""The Stripe adapter (ticketing.payments) against localstripe: webhook signatures are
checked, an attempt is found behind the hundreds of payments made since, and each call
carries its own Idempotency-Key (a look-up none)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tests.integration.payments.localstripe import LocalStripe
from tests.integration.payments.support import WEBHOOK_SECRET, HeldSeats, charge_unrecorded
from tests.support import free_port, settings_with
from ticketing.config import Settings
from ticketing.payments import InvalidSignature, Payments, PaymentSucceeded, verify_webhook


def signed(payload: bytes, secret: str, at: int | None = None) -> str:
    at = at or int(time.time())
    digest = hmac.new(secret.encode(), b"%d.%s" % (at, payload), hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def test_webhook_signatures_are_checked() -> None:
    payload = json.dumps({"id": "evt_1", "object": "event", "type": "x", "data": {}}).encode()
    assert verify_webhook(payload, signed(payload, WEBHOOK_SECRET), WEBHOOK_SECRET)["id"] == (
        "evt_1"
    )
    for header in (
        signed(payload, "whsec_other"),
        None,
        "garbage",
        signed(payload, WEBHOOK_SECRET, at=int(time.time()) - 3600),
    ):
        with pytest.raises(InvalidSignature):
            verify_webhook(payload, header, WEBHOOK_SECRET)


async def test_an_attempt_is_found_behind_the_hundreds_of_payments_made_since(
    pool: asyncpg.Pool, payments: Payments, held: HeldSeats, localstripe: LocalStripe
) -> None:
    """At an on-sale a hundred other payments may be made between a worker's crash and the
    look-up that settles its attempt. Stripe (and our localstripe) list the newest first,
    so the look-up reads pages back to the attempt's own time; the control, one page, as
    the look-up used to read, misses it."""
    attempt_id = await charge_unrecorded(
        pool, payments, held.hold_id, held.ticket_ids, 5000, "pm_card_visa"
    )
    others = asyncio.Semaphore(16)

    async def another() -> None:
        async with others:
            await payments.charge(
                idempotency_key="other-" + uuid.uuid4().hex,
                amount_cents=100,
                currency="EUR",
                payment_method="pm_card_visa",
                metadata={"purpose": "traffic"},
            )

    await asyncio.gather(*(another() for _ in range(150)))
    created = await pool.fetchval("SELECT created_at FROM payments WHERE id = $1", attempt_id)
    assert await payments.find_attempt(str(attempt_id)) is None  # the control: one page
    found = await payments.find_attempt(str(attempt_id), since=created.timestamp() - 60)
    assert found is not None and found.status == "succeeded"
    assert found.metadata["hold_id"] == str(held.hold_id)


@contextlib.asynccontextmanager
async def recording_hop(upstream: str) -> AsyncIterator[tuple[str, list[tuple[str, str, Any]]]]:
    """An HTTP hop to ``upstream`` (the real localstripe) that notes each request's method,
    path and Idempotency-Key header, and passes it and its answer through unchanged."""
    seen: list[tuple[str, str, Any]] = []
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, request.headers.get("Idempotency-Key")))
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type", "idempotency-key")
        }
        async with session.request(
            request.method, upstream + request.path_qs, data=await request.read(), headers=headers
        ) as resp:
            return web.Response(
                status=resp.status, body=await resp.read(), content_type="application/json"
            )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()
        await session.close()


async def test_each_stripe_call_carries_its_own_idempotency_key(
    payment_settings: Settings, localstripe: LocalStripe
) -> None:
    """Charges and refunds are raw SDK requests: the key must still travel as the
    Idempotency-Key header (the SDK makes one up for a POST without it, so the check is
    that it is ours), and a look-up sends none."""
    attempt = uuid.uuid4().hex
    async with recording_hop(localstripe.url) as (url, seen):
        client = Payments(settings_with(payment_settings, stripe_api_base=url))
        try:
            paid = await client.charge(
                idempotency_key=f"charge-{attempt}",
                amount_cents=2500,
                currency="EUR",
                payment_method="pm_card_visa",
                metadata={"attempt_id": attempt},
            )
            assert isinstance(paid, PaymentSucceeded)
            refund = await client.refund(
                paid.payment_intent_id, idempotency_key=f"refund-{attempt}"
            )
            found = await client.find_attempt(attempt)
        finally:
            await client.close()
    assert seen == [
        ("POST", "/v1/payment_intents", f"charge-{attempt}"),
        ("POST", "/v1/refunds", f"refund-{attempt}"),
        ("GET", "/v1/payment_intents", None),
    ]
    assert refund.startswith("re_")
    assert found is not None and found.payment_intent_id == paid.payment_intent_id
    assert found.metadata == {"attempt_id": attempt}
    [intent] = [
        pi
        for pi in await asyncio.to_thread(localstripe._intents)
        if pi["metadata"].get("attempt_id") == attempt
    ]
    assert (intent["amount"], intent["currency"], intent["status"]) == (2500, "eur", "succeeded")
