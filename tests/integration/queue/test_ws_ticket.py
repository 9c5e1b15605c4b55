"""The websocket's single-use tickets (``POST /queue/{event_id}/ws-ticket``): one opens one
socket of its fan's, for its event, within its 30 s; an access token in the URL is taken
only in development."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient

from tests.integration.booking.support import call, open_client
from tests.integration.queue.support import (
    join,
    patch_queue,
    queue_event,
    receive,
    socket_path,
    until,
)
from tests.support import auth_header, make_token, settings_with
from ticketing.config import Settings
from waitingroom.queue import ws_ticket
from waitingroom.queue.runtime import QUEUE_KEY


async def mint(client: TestClient, settings: Settings, user: str, event: int) -> tuple[int, dict]:
    status, body, _ = await call(
        client, "POST", f"/queue/{event}/ws-ticket", auth_header(settings, user)
    )
    return status, body


async def opens_as(client: TestClient, path: str) -> int:
    """The position the socket's first status gives: whose socket it opened."""
    async with client.ws_connect(path) as ws:
        first, _ = await until(ws, lambda m: m["type"] == "status", 5)
        return int(first["position"])


async def refused(client: TestClient, path: str, headers: dict | None = None) -> tuple[int, str]:
    status, body, _ = await call(client, "GET", path, headers or {})
    return status, body["code"]


async def test_a_ticket_opens_one_socket_and_is_kept_30_s_under_the_event(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    await join(qclient, queue_settings, "once", event)
    status, body = await mint(qclient, queue_settings, "once", event)
    assert status == 200 and set(body) == {"ticket", "expires_in"}
    assert body["expires_in"] == 30 and len(body["ticket"]) >= 32
    # In Redis under the event's hash tag, for 30 s at most.
    redis = qclient.app[QUEUE_KEY].store.redis
    key = f"{queue_settings.redis_prefix}q:{{{event}}}:ws-ticket:{body['ticket']}"
    assert 0 < await redis.ttl(key) <= 30
    path = f"/queue/{event}/ws?ticket={body['ticket']}"
    assert await opens_as(qclient, path) == 1
    assert await redis.exists(key) == 0
    # Used: refused, before the upgrade, as a problem.
    assert await refused(qclient, path) == (401, "invalid_ticket")
    # A new one for the reconnect works.
    assert await opens_as(qclient, await socket_path(qclient, queue_settings, "once", event)) == 1


async def test_unknown_and_expired_tickets_are_refused(
    qclient, queue_settings, pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = await queue_event(pool)
    await join(qclient, queue_settings, "late", event)
    for ticket in ("made-up", "", "x" * 500):
        assert await refused(qclient, f"/queue/{event}/ws?ticket={ticket}") == (
            401,
            "invalid_ticket",
        )
    monkeypatch.setattr(ws_ticket, "TICKET_TTL_SECONDS", 1)
    status, body = await mint(qclient, queue_settings, "late", event)
    assert (status, body["expires_in"]) == (200, 1)
    await asyncio.sleep(1.5)
    path = f"/queue/{event}/ws?ticket={body['ticket']}"
    assert await refused(qclient, path) == (401, "invalid_ticket")


async def test_a_ticket_is_for_its_event_only(qclient, queue_settings, pool) -> None:
    event, other = await queue_event(pool), await queue_event(pool)
    for each in (event, other):
        await join(qclient, queue_settings, "two-events", each)
    _, body = await mint(qclient, queue_settings, "two-events", event)
    assert await refused(qclient, f"/queue/{other}/ws?ticket={body['ticket']}") == (
        401,
        "invalid_ticket",
    )
    # Not spent by the refusal: it still opens its own event's socket.
    assert await opens_as(qclient, f"/queue/{event}/ws?ticket={body['ticket']}") == 1


async def test_a_ticket_carries_its_fan(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, paused=True)  # places stay put
    for user in ("first-fan", "second-fan"):
        await join(qclient, queue_settings, user, event)
    _, body = await mint(qclient, queue_settings, "first-fan", event)
    path = f"/queue/{event}/ws?ticket={body['ticket']}"
    # Sent with another fan's token: refused (and spent).
    second = auth_header(queue_settings, "second-fan")
    assert await refused(qclient, path, second) == (401, "invalid_ticket")
    # Alone, a ticket opens its own fan's socket, whoever presents it.
    assert (
        await opens_as(qclient, await socket_path(qclient, queue_settings, "first-fan", event)) == 1
    )
    assert (
        await opens_as(qclient, await socket_path(qclient, queue_settings, "second-fan", event))
        == 2
    )
    # With its own fan's token it opens too.
    _, body = await mint(qclient, queue_settings, "second-fan", event)
    async with qclient.ws_connect(
        f"/queue/{event}/ws?ticket={body['ticket']}", headers=second
    ) as ws:
        first, _ = await until(ws, lambda m: m["type"] == "status", 5)
        assert first["position"] == 2


async def test_the_route_refuses_strangers_and_unknown_events(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    status, body, headers = await call(qclient, "POST", f"/queue/{event}/ws-ticket", {})
    assert (status, body["code"]) == (401, "unauthorized")
    assert headers["Content-Type"].startswith("application/problem+json")
    status, body = await mint(qclient, queue_settings, "not-joined", event)
    assert (status, body["code"]) == (404, "not_in_queue")
    for unknown in ("abc", 0, 999_999_999):
        status, body, _ = await call(
            qclient, "POST", f"/queue/{unknown}/ws-ticket", auth_header(queue_settings, "x")
        )
        assert (status, body["code"]) == (404, "event_not_found"), unknown


async def test_a_token_in_the_url_only_in_development(
    qclient, queue_settings, pool, worker
) -> None:
    assert not queue_settings.is_dev
    event = await queue_event(pool)
    await join(qclient, queue_settings, "url-token", event)
    token = make_token(queue_settings, "url-token")
    status, body, _ = await call(qclient, "GET", f"/queue/{event}/ws?token={token}", {})
    assert (status, body["code"]) == (401, "unauthorized")
    assert "ws-ticket" in body["detail"]
    # A client that can set headers sends the token in one, outside the URL.
    headers = {"Authorization": f"Bearer {token}"}
    async with qclient.ws_connect(f"/queue/{event}/ws", headers=headers) as ws:
        assert (await receive(ws, 5))["type"] == "status"

    dev = settings_with(queue_settings, env="dev")
    client = await open_client(dev)
    try:
        async with client.ws_connect(f"/queue/{event}/ws?token={token}") as ws:
            assert (await receive(ws, 5))["type"] == "status"
    finally:
        await client.close()


async def test_tickets_count_against_the_fans_queue_limit(queue_settings, pool, worker) -> None:
    strict = settings_with(
        queue_settings,
        queue_user_rate_per_minute=30,  # a burst of 5
        redis_prefix=f"{queue_settings.redis_prefix}wst-{time.time_ns()}:",
    )
    event = await queue_event(pool)
    client = await open_client(strict)
    try:
        assert (await join(client, strict, "greedy", event))[0] == 200
        statuses = [(await mint(client, strict, "greedy", event))[0] for _ in range(5)]
        assert statuses == [200] * 4 + [429]
    finally:
        await client.close()
