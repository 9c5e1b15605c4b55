"""The queue websocket, with aiohttp's client: the handshake's checks, status pushes on
every position change and at least every 5 s, and admission, pause and the end of a
session pushed at once."""

from __future__ import annotations

import time

import aiohttp
from aiohttp import WSMsgType

from tests.integration.booking.support import call, open_client
from tests.integration.queue.support import (
    in_snapshot,
    join,
    patch_queue,
    queue_event,
    receive,
    socket_path,
    until,
)
from tests.support import auth_header


async def test_the_handshake_checks_ticket_origin_event_and_membership(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    status, body, _ = await call(qclient, "GET", f"/queue/{event}/ws", {})
    assert (status, body["code"]) == (401, "unauthorized")
    stranger = auth_header(queue_settings, "stranger")
    status, body, _ = await call(qclient, "POST", f"/queue/{event}/ws-ticket", stranger)
    assert (status, body["code"]) == (404, "not_in_queue")
    status, body, _ = await call(qclient, "GET", f"/queue/{event}/ws", stranger)
    assert (status, body["code"]) == (404, "not_in_queue")
    await join(qclient, queue_settings, "origin-fan", event)
    path = await socket_path(qclient, queue_settings, "origin-fan", event)
    status, body, _ = await call(qclient, "GET", path, {"Origin": "https://evil.example"})
    assert (status, body["code"]) == (403, "forbidden_origin")
    host = f"{qclient.host}:{qclient.port}"
    # The refusal for the origin came before the ticket was looked at: it still serves.
    async with qclient.ws_connect(path, origin=f"http://{host}") as ws:
        first = await receive(ws, 5)
        assert first["type"] == "status" and first["event_id"] == event


async def test_pushes_follow_the_queue(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool)
    await in_snapshot(qclient, queue_settings, event)
    await patch_queue(qclient, queue_settings, event, paused=True, max_active=1)
    for user in ("ws-a", "ws-b", "ws-c"):
        await join(qclient, queue_settings, user, event)
    async with qclient.ws_connect(await socket_path(qclient, queue_settings, "ws-c", event)) as ws:
        paused, _ = await until(ws, lambda m: m["type"] == "paused", 5)
        assert paused == {"type": "paused", "event_id": event}
        first, _ = await until(ws, lambda m: m["type"] == "status", 5)
        assert (first["status"], first["position"], first["ahead"]) == ("paused", 3, 2)
        assert first["queue_ticket"] and first["eta_seconds"] is None
        # nothing changes: a status comes anyway, within 5 s
        again, waited = await until(ws, lambda m: m["type"] == "status", 6)
        assert again["position"] == 3 and waited <= 5.2

        # the fan ahead leaves: the new position is pushed within a round
        await call(qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, "ws-a"))
        moved, waited = await until(ws, lambda m: m["type"] == "status", 3)
        assert moved["position"] == 2 and waited < 2

        # resumed: ws-b is admitted, ws-c is next
        await patch_queue(qclient, queue_settings, event, paused=False, admit_per_minute=6000)
        resumed, _ = await until(
            ws, lambda m: m["type"] == "status" and m["status"] == "waiting", 3
        )
        assert resumed["position"] in (1, 2)
        await until(ws, lambda m: m["type"] == "status" and m["position"] == 1, 3)

        # ws-b's slot frees: ws-c's admission is pushed at once, with a working token
        await call(qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, "ws-b"))
        admitted, waited = await until(ws, lambda m: m["type"] == "admitted", 3)
        assert waited < 1.5
        assert set(admitted) == {"type", "event_id", "admission_token", "expires_at"}
        status, hold, _ = await call(
            qclient,
            "POST",
            "/booking/reserve",
            {
                **auth_header(queue_settings, "ws-c"),
                "X-Admission-Token": admitted["admission_token"],
            },
            {"event_id": event, "quantity": 1},
        )
        assert status == 201, hold

        # the fan leaves (say from another tab): told, then the socket closes
        await call(qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, "ws-c"))
        ended, _ = await until(ws, lambda m: m["type"] == "session_ended", 3)
        assert ended["reason"] == "left"
        closing = await ws.receive(timeout=3)
        assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)


async def test_pause_is_pushed_at_once_and_connected_fans_keep_their_place(
    qclient, queue_settings, pool
) -> None:
    settings = queue_settings
    event = await queue_event(pool)
    await patch_queue(qclient, settings, event, max_active=0)  # nobody admitted
    await join(qclient, settings, "still-here", event)
    async with qclient.ws_connect(await socket_path(qclient, settings, "still-here", event)) as ws:
        await until(ws, lambda m: m["type"] == "status", 5)
        started = time.monotonic()
        await patch_queue(qclient, settings, event, paused=True)
        await until(ws, lambda m: m["type"] == "paused", 2)
        assert time.monotonic() - started < 1
        status, _, _ = await call(
            qclient, "GET", f"/queue/{event}/status", auth_header(settings, "still-here")
        )
        assert status == 200


async def test_shutdown_closes_the_sockets(queue_settings, pool, worker) -> None:
    event = await queue_event(pool)
    client = await open_client(queue_settings)
    await join(client, queue_settings, "at-closing", event)
    # A session of its own: the test client would close its sockets itself first.
    async with aiohttp.ClientSession() as session:
        url = client.make_url(await socket_path(client, queue_settings, "at-closing", event))
        async with session.ws_connect(url) as ws:
            await receive(ws, 5)
            await client.close()
            message = await ws.receive(timeout=5)
            while message.type == WSMsgType.TEXT:
                message = await ws.receive(timeout=5)
            assert message.type == WSMsgType.CLOSE
            assert message.data == aiohttp.WSCloseCode.GOING_AWAY
