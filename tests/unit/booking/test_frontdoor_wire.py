"""What the booking front door publishes, byte for byte: the front door builds typed
commands now, and an old worker may run beside a new front door during a deploy, so every
route's command must reach the wire exactly as ``booking_command(...)`` made it. The
expected bytes below are what the front door published before (commit cc6e8e2), recorded
through these same requests; only the broker is left out (the RPC client's ``call``
records what it would publish, stamped as it stamps it)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.support import auth_header
from ticketing.auth import VERIFIER_KEY, TokenVerifier
from ticketing.config import Settings
from ticketing.messages import BookingReply, Command
from ticketing.problems import problem_middleware
from ticketing.web import SETTINGS_KEY
from waitingroom.booking.commands import RPC_KEY
from waitingroom.booking.contract import BOOKING_APIS
from waitingroom.booking.rpc import BookingRpc, stamped
from waitingroom.queue.admission import issue_admission
from waitingroom.queue.port import QUEUE_PORT_KEY

SETTINGS = Settings(jwt_secret="w" * 40)
SENT_AT = 1765000000.25
CORRELATION_ID = "c0ffee"
HOLD = "0b7c2a4e-31c5-4f0e-9d43-5a3c1f2e8b11"
BOOKING = "6a1d9e20-7b8f-4c3a-a0d5-2e4f6b8c9d01"
REQUEST_ID = "@request_id@"  # where a route makes a fresh uuid4 request id


class RecordingRpc(BookingRpc):
    """The front door's RPC client without a broker: ``call`` records the message it
    would publish and answers as a worker would."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.sent: list[tuple[bytes, Any]] = []
        self.answers: list[BookingReply] = []

    async def call(self, command: Command, partition_key: int | str) -> BookingReply:
        self.sent.append((orjson.dumps(stamped(command, CORRELATION_ID, SENT_AT)), partition_key))
        return self.answers.pop(0) if self.answers else BookingReply(200, {"ok": True})


class FakeQueue:
    """The queue port as the booking routes see it: the fan's session stands, or has
    ended (``refusal``); the rest is bookkeeping these tests do not look at."""

    refusal: str | None = None

    async def reserve_refusal(self, event_id: int, user_id: str, keep_ms: int) -> str | None:
        return self.refusal

    async def claim(self, event_id: int, user_id: str, seats: int) -> None:
        pass

    async def hurry_claim(self, event_id: int, user_id: str, grace_ms: int) -> None:
        pass

    def remember_hold(self, hold_id: str, event_id: int) -> None:
        pass

    def reserve_took(self, seconds: float) -> None:
        pass

    async def recount_if_all_held(self, hold_id: str | None = None) -> None:
        pass

    async def end_session_after_booking(self, user_id: str, hold_id: str) -> None:
        pass


@pytest.fixture
async def door() -> AsyncIterator[tuple[TestClient, RecordingRpc, FakeQueue]]:
    app = web.Application(middlewares=[problem_middleware])
    app[SETTINGS_KEY] = SETTINGS
    app[VERIFIER_KEY] = TokenVerifier(SETTINGS)
    rpc = RecordingRpc(SETTINGS)
    app[RPC_KEY] = rpc
    queue = FakeQueue()
    app[QUEUE_PORT_KEY] = queue  # type: ignore[assignment]
    for api in BOOKING_APIS:
        app.router.add_routes(api.table)
    async with TestClient(TestServer(app)) as client:
        yield client, rpc, queue


def fan(*roles: str, key: str | None = None) -> dict[str, str]:
    headers = auth_header(SETTINGS, "ann", list(roles))
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def idem(key: str, route: str) -> str:
    return "idem:" + hashlib.sha256("\0".join(("ann", key, route)).encode()).hexdigest()


def wire(body: str, request_id: str) -> bytes:
    return body.replace(REQUEST_ID, request_id).encode()


async def published(client: TestClient, rpc: RecordingRpc, method: str, path: str, **kw: Any):
    async with client.request(method, path, **kw) as response:
        assert response.status < 500, await response.text()
    (sent, key), *more = rpc.sent
    assert not more
    rpc.sent.clear()
    return sent, key, json.loads(sent)["request_id"]


ENVELOPE = '"v":1,"request_id":"@request_id@","user_id":"ann","roles":["admin","support"]'
STAMP = f',"sent_at":{SENT_AT},"correlation_id":"{CORRELATION_ID}"}}'


async def test_reserves_go_out_as_they_always_did(door) -> None:
    client, rpc, _ = door
    me = fan("support", "admin", key="k1")
    sent, key, _ = await published(
        client,
        rpc,
        "POST",
        "/booking/reserve",
        json={"event_id": 7, "quantity": 2, "section": "Floor"},
        headers=me,
    )
    assert key == 7
    assert sent == wire(
        '{"type":"booking.reserve",' + ENVELOPE + ',"admitted":false,"event_id":7,'
        '"quantity":2,"section":"Floor"' + STAMP,
        idem("k1", "reserve"),
    )
    sent, _, request_id = await published(
        client, rpc, "POST", "/booking/reserve", json={"event_id": 7, "ticket_id": 3}, headers=fan()
    )
    assert sent == wire(
        '{"type":"booking.reserve","v":1,"request_id":"@request_id@","user_id":"ann",'
        '"roles":[],"admitted":false,"event_id":7,"ticket_ids":[3]' + STAMP,
        request_id,
    )


async def test_an_admitted_reserve_and_its_replay_after_the_session_ended(door) -> None:
    client, rpc, queue = door
    token = issue_admission(SETTINGS, "ann", 7, 600)
    me = {**fan("admin", "support", key="k2"), "X-Admission-Token": token}

    async def reserve_held() -> bytes:
        rpc.answers.append(BookingReply(201, {"hold_id": HOLD, "tickets": [{"id": 3}]}))
        body = {"event_id": 7, "ticket_ids": [3, 4]}
        sent, _, _ = await published(client, rpc, "POST", "/booking/reserve", json=body, headers=me)
        return sent

    def reserve_wire(flag: str) -> bytes:
        return wire(
            '{"type":"booking.reserve",'
            + ENVELOPE
            + f',{flag},"event_id":7,"ticket_ids":[3,4]'
            + STAMP,
            idem("k2", "reserve"),
        )

    assert await reserve_held() == reserve_wire('"admitted":true')
    # The session ended meanwhile: the retry may only be answered from the stored reply.
    queue.refusal = "Your session ended."
    assert await reserve_held() == reserve_wire('"replay_only":true')


async def test_confirm_release_and_the_reads_go_out_as_they_always_did(door) -> None:
    client, rpc, _ = door
    me = fan("admin", "support", key="k3")
    sent, key, _ = await published(
        client,
        rpc,
        "POST",
        "/booking/confirm",
        json={"hold_id": HOLD.upper(), "payment_method": "pm_card_visa"},
        headers=me,
    )
    assert key == HOLD
    assert sent == wire(
        '{"type":"booking.confirm",' + ENVELOPE + f',"hold_id":"{HOLD}",'
        '"payment_method":"pm_card_visa"' + STAMP,
        idem("k3", "confirm"),
    )
    sent, key, _ = await published(client, rpc, "DELETE", f"/booking/holds/{HOLD}", headers=me)
    assert key == HOLD
    assert sent == wire(
        '{"type":"booking.release",' + ENVELOPE + f',"hold_id":"{HOLD}"' + STAMP,
        idem("k3", "release:" + HOLD),
    )
    sent, key, request_id = await published(client, rpc, "GET", "/booking/9", headers=me)
    assert key == 9
    assert sent == wire(
        '{"type":"booking.ticket_status",' + ENVELOPE + ',"ticket_id":9' + STAMP, request_id
    )
    sent, key, request_id = await published(client, rpc, "GET", f"/bookings/{BOOKING}", headers=me)
    assert key == BOOKING
    assert sent == wire(
        '{"type":"booking.get",' + ENVELOPE + f',"booking_id":"{BOOKING}"' + STAMP, request_id
    )
    sent, key, request_id = await published(client, rpc, "GET", "/me/bookings", headers=me)
    assert key == "ann"
    assert sent == wire(
        '{"type":"booking.list",' + ENVELOPE + ',"limit":20,"cursor":null' + STAMP, request_id
    )
    cursor = base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00","x"]').decode()
    sent, _, request_id = await published(
        client, rpc, "GET", f"/me/bookings?limit=5&cursor={cursor}", headers=me
    )
    assert sent == wire(
        '{"type":"booking.list",' + ENVELOPE + ',"limit":5,'
        '"cursor":["2026-01-01T00:00:00+00:00","x"]' + STAMP,
        request_id,
    )


async def test_a_stripe_event_goes_out_as_it_always_did(door) -> None:
    client, rpc, _ = door
    payload = (
        b'{"id":"evt_9","type":"payment_intent.succeeded",'
        b'"data":{"object":{"id":"pi_1","metadata":{"hold_id":"' + HOLD.encode() + b'"}}}}'
    )
    now = int(time.time())
    signature = hmac.new(
        SETTINGS.stripe_webhook_secret.encode(), b"%d.%s" % (now, payload), hashlib.sha256
    ).hexdigest()
    sent, key, _ = await published(
        client,
        rpc,
        "POST",
        "/webhooks/stripe",
        data=payload,
        headers={"Stripe-Signature": f"t={now},v1={signature}"},
    )
    assert key == HOLD
    assert sent == (
        b'{"type":"booking.stripe_event","v":1,"request_id":"stripe:evt_9","user_id":"stripe",'
        b'"roles":[],"event":' + payload + STAMP.encode()
    )
