"""What the waiting-room routes refuse before they do anything: no token (401), a fan on
an admin route (403), an event that is unknown, malformed or has no queue (404), a fan or
an address over the queue's own limits (429, and only those limits), and Redis down (503
at once)."""

from __future__ import annotations

import time

from tests.integration.booking.support import call, make_event, open_client
from tests.integration.queue.support import SEATS, admin, join, queue_event, queue_status
from tests.support import auth_header, free_port, settings_with


async def test_queue_routes_need_a_token_and_admin_routes_the_admin_role(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    for method, path in (
        ("POST", f"/queue/{event}/join"),
        ("GET", f"/queue/{event}/status"),
        ("POST", f"/queue/{event}/leave"),
        ("GET", f"/queue/{event}/ws"),
        ("POST", f"/queue/{event}/ws-ticket"),
        ("GET", "/admin/queues"),
        ("GET", f"/admin/queues/{event}"),
        ("PATCH", f"/admin/queues/{event}"),
    ):
        status, body, headers = await call(qclient, method, path, {})
        assert (status, body["code"]) == (401, "unauthorized"), path
        assert headers["Content-Type"].startswith("application/problem+json")
    fan_only = auth_header(queue_settings, "not-ops")
    for method, path in (
        ("GET", "/admin/queues"),
        ("GET", f"/admin/queues/{event}"),
        ("PATCH", f"/admin/queues/{event}"),
    ):
        status, body, _ = await call(qclient, method, path, fan_only, {"paused": True})
        assert (status, body["code"]) == (403, "forbidden"), path
    status, body, _ = await call(
        qclient, "GET", f"/queue/{event}/ws", {"Authorization": "Bearer garbage"}
    )
    assert (status, body["code"]) == (401, "invalid_token")


async def test_unknown_malformed_or_queueless_events_are_404(qclient, queue_settings, pool) -> None:
    no_queue = await make_event(pool, SEATS)
    me = auth_header(queue_settings, "lost")
    for event in (999_999_999, no_queue, "abc", 0, -3, "1e3"):
        for method, path, headers in (
            ("POST", f"/queue/{event}/join", me),
            ("GET", f"/queue/{event}/status", me),
            ("POST", f"/queue/{event}/leave", me),
            ("GET", f"/queue/{event}/fairness", {}),
            ("GET", f"/queue/{event}/ws", me),
            ("POST", f"/queue/{event}/ws-ticket", me),
            ("GET", f"/admin/queues/{event}", admin(queue_settings)),
            ("PATCH", f"/admin/queues/{event}", admin(queue_settings)),
        ):
            payload = None if method == "GET" else {}
            status, body, _ = await call(qclient, method, path, headers, payload)
            assert (status, body["code"]) == (404, "event_not_found"), (method, path)


async def test_join_and_status_are_rate_limited_per_fan(queue_settings, pool, worker) -> None:
    strict = settings_with(
        queue_settings,
        queue_user_rate_per_minute=30,  # a burst of 5
        redis_prefix=f"{queue_settings.redis_prefix}qrl-{time.time_ns()}:",
    )
    event = await queue_event(pool)
    client = await open_client(strict)
    try:
        statuses = [(await join(client, strict, "eager", event))[0] for _ in range(3)]
        statuses += [(await queue_status(client, strict, "eager", event))[0] for _ in range(3)]
        assert statuses == [200] * 5 + [429]
        status, problem, headers = await call(
            client, "GET", f"/queue/{event}/status", auth_header(strict, "eager")
        )
        assert (status, problem["code"]) == (429, "rate_limited")
        assert int(headers["Retry-After"]) >= 1
        # another fan, from the same address, is not held back by it
        assert (await join(client, strict, "patient", event))[0] == 200
    finally:
        await client.close()


async def test_queue_routes_answer_to_their_own_limits_only(queue_settings, pool, worker) -> None:
    """Join and status are held to the queue's limits, not also to the generic one (which
    would only add a Redis round trip per call); every other route still is."""
    generic_tight = settings_with(
        queue_settings,
        rate_limit_per_minute=6,
        rate_limit_burst=2,
        redis_prefix=f"{queue_settings.redis_prefix}qown-{time.time_ns()}:",
    )
    event = await queue_event(pool)
    client = await open_client(generic_tight)
    try:
        statuses = [(await join(client, generic_tight, "fan", event))[0] for _ in range(4)]
        statuses += [(await queue_status(client, generic_tight, "fan", event))[0] for _ in range(4)]
        assert statuses == [200] * 8  # the queue's 120/min allows these
        me = auth_header(generic_tight, "fan")
        others = [(await call(client, "GET", "/booking/1", me))[0] for _ in range(4)]
        assert 429 in others  # the generic limit still applies elsewhere
    finally:
        await client.close()


async def test_join_is_rate_limited_per_address(queue_settings, pool, worker) -> None:
    strict = settings_with(
        queue_settings,
        queue_ip_rate_per_minute=30,
        redis_prefix=f"{queue_settings.redis_prefix}qip-{time.time_ns()}:",
    )
    event = await queue_event(pool)
    client = await open_client(strict)
    try:
        ip = {"X-Real-IP": "198.51.100.7"}
        statuses = []
        for i in range(6):
            status, _, _ = await call(
                client, "POST", f"/queue/{event}/join", {**auth_header(strict, f"bot{i}"), **ip}
            )
            statuses.append(status)
        assert statuses == [200] * 5 + [429]
        other_ip = {**auth_header(strict, "bot9"), "X-Real-IP": "198.51.100.8"}
        status, _, _ = await call(client, "POST", f"/queue/{event}/join", other_ip)
        assert status == 200
    finally:
        await client.close()


async def test_redis_down_is_503_at_once(queue_settings, pool, worker) -> None:
    down = settings_with(queue_settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    event = await queue_event(pool)
    client = await open_client(down)
    try:
        started = time.monotonic()
        for method, path in (
            ("POST", f"/queue/{event}/join"),
            ("GET", f"/queue/{event}/status"),
            ("GET", f"/admin/queues/{event}"),
        ):
            status, problem, headers = await call(
                client, method, path, auth_header(down, "ops", ["admin"])
            )
            assert (status, problem["code"]) == (503, "backend_unavailable"), path
            assert headers["Retry-After"]
        assert time.monotonic() - started < 5
    finally:
        await client.close()
