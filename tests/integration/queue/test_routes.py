"""Every waiting-room route, status and error code of the contract, through the
waitingroom app (its admitter running) on real Redis, PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from tests.integration.booking.support import (
    call,
    fan,
    make_event,
    open_client,
    running_worker,
)
from tests.integration.queue.support import (
    SEATS,
    admin,
    get_queue,
    in_snapshot,
    join,
    patch_queue,
    queue_event,
    queue_status,
    wait_status,
)
from tests.support import auth_header, eventually, free_port, settings_with
from ticketing.config import Settings
from ticketing.domain.seating import Section
from waitingroom.queue.admission import admission_for_session
from waitingroom.queue.runtime import QUEUE_KEY

STATUS_FIELDS = {
    "event_id",
    "status",
    "position",
    "ahead",
    "eta_seconds",
    "queue_ticket",
    "on_sale_at",
    "waiting",
    "admit_rate_per_minute",
}


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


async def test_join_again_keeps_the_place_and_status_has_the_same_shape(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, paused=True)
    places = {}
    for user in ("first", "second", "third"):
        status, body = await join(qclient, queue_settings, user, event)
        assert status == 200, body
        assert set(body) == STATUS_FIELDS
        places[user] = body
    assert [places[u]["position"] for u in ("first", "second", "third")] == [1, 2, 3]
    assert [places[u]["ahead"] for u in ("first", "second", "third")] == [0, 1, 2]
    assert all(b["status"] == "paused" and b["event_id"] == event for b in places.values())
    status, again = await join(qclient, queue_settings, "first", event)
    assert (status, again["position"], again["ahead"]) == (200, 1, 0)
    status, polled = await queue_status(qclient, queue_settings, "second", event)
    assert status == 200 and set(polled) == STATUS_FIELDS
    assert (polled["position"], polled["ahead"]) == (2, 1)
    status, body = await queue_status(qclient, queue_settings, "never-joined", event)
    assert (status, body["code"]) == (404, "not_in_queue")


@pytest.mark.parametrize(
    "body", [[1], "x", {"queue_ticket": 5}, {"queue_ticket": "forged"}, {"seat": 1}]
)
async def test_join_refuses_bad_input(qclient, queue_settings, pool, body) -> None:
    event = await queue_event(pool)
    status, problem = await join(qclient, queue_settings, "val", event, body)
    assert (status, problem["code"]) == (400, "validation_error"), body
    status, problem = await queue_status(qclient, queue_settings, "val", event)
    assert status == 404  # nothing changed


async def test_a_queue_ticket_works_only_for_its_fan_and_event(
    qclient, queue_settings, pool
) -> None:
    event, other = await queue_event(pool), await queue_event(pool)
    _, mine = await join(qclient, queue_settings, "owner", event)
    ticket = {"queue_ticket": mine["queue_ticket"]}
    status, problem = await join(qclient, queue_settings, "thief", event, ticket)
    assert (status, problem["code"]) == (403, "queue_ticket_invalid")
    status, problem = await join(qclient, queue_settings, "owner", other, ticket)
    assert (status, problem["code"]) == (403, "queue_ticket_invalid")


async def test_a_queue_ticket_restores_a_place_redis_lost_but_not_one_given_up(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, paused=True)
    tickets = {}
    for user in ("early", "middle", "late"):
        _, body = await join(qclient, queue_settings, user, event)
        tickets[user] = {"queue_ticket": body["queue_ticket"]}
    # "middle" leaves, then tries to come back to the same place with its ticket
    status, _, _ = await call(
        qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, "middle")
    )
    assert status == 204
    _, back = await join(qclient, queue_settings, "middle", event, tickets["middle"])
    assert back["position"] == 3  # behind "late": a place given up is gone
    # Redis loses the queue (a flush, a failover to a replica that had nothing)
    store = qclient.app[QUEUE_KEY].store
    await store.redis.delete(*store.keys(event, "waiting", "pre", "active", "seen", "state"))
    await patch_queue(qclient, queue_settings, event, paused=True)
    _, newcomer = await join(qclient, queue_settings, "newcomer", event)
    assert newcomer["position"] == 1
    _, late = await join(qclient, queue_settings, "late", event, tickets["late"])
    assert late["position"] == 1
    _, early = await join(qclient, queue_settings, "early", event, tickets["early"])
    assert early["position"] == 1
    # both kept their places ahead of the newcomer, in their original order
    positions = [
        (await queue_status(qclient, queue_settings, user, event))[1]["position"]
        for user in ("early", "late", "newcomer")
    ]
    assert positions == [1, 2, 3]


async def test_admission_token_binds_user_event_and_time(qclient, queue_settings, pool) -> None:
    event, other = await queue_event(pool), await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, admit_per_minute=6000)
    await join(qclient, queue_settings, "admitted-fan", event)
    body = await wait_status(qclient, queue_settings, "admitted-fan", event, "admitted")
    assert (body["position"], body["ahead"], body["eta_seconds"]) == (0, 0, 0)
    token = body["admission_token"]
    assert body["admission_expires_at"].endswith("Z")
    me = fan(queue_settings, "admitted-fan")
    reserve = {"event_id": event, "quantity": 1}
    status, problem, _ = await call(qclient, "POST", "/booking/reserve", me, reserve)
    assert (status, problem["code"]) == (403, "admission_required")
    expired = admission_for_session(queue_settings, "admitted-fan", event, int(time.time()) - 60)
    for who, body_, token_ in (
        (fan(queue_settings, "someone-else"), reserve, token),  # another fan's token
        (me, {"event_id": other, "quantity": 1}, token),  # another event's
        (me, reserve, expired),  # expired
    ):
        status, problem, _ = await call(
            qclient, "POST", "/booking/reserve", {**who, "X-Admission-Token": token_}, body_
        )
        assert (status, problem["code"]) == (403, "admission_invalid")
    status, hold, _ = await call(
        qclient, "POST", "/booking/reserve", {**me, "X-Admission-Token": token}, reserve
    )
    assert status == 201, hold
    # joining again while admitted answers the same session and token
    _, again = await join(qclient, queue_settings, "admitted-fan", event)
    assert again["status"] == "admitted" and again["admission_token"] == token
    # once the session ends (here: the fan leaves), the unexpired token admits no more
    await call(qclient, "POST", f"/queue/{event}/leave", me)
    status, problem, _ = await call(
        qclient, "POST", "/booking/reserve", {**me, "X-Admission-Token": token}, reserve
    )
    assert (status, problem["code"]) == (403, "admission_invalid"), problem


async def test_leaving_or_expiring_frees_the_slot_for_the_next_fan(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, admit_per_minute=6000, max_active=1)
    for user in ("one", "two", "three"):
        await join(qclient, queue_settings, user, event)
    await wait_status(qclient, queue_settings, "one", event, "admitted")
    _, two = await queue_status(qclient, queue_settings, "two", event)
    assert (two["status"], two["position"]) == ("waiting", 1)
    status, _, _ = await call(
        qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, "one")
    )
    assert status == 204
    status, problem = await queue_status(qclient, queue_settings, "one", event)
    assert (status, problem["code"]) == (404, "not_in_queue")
    await wait_status(qclient, queue_settings, "two", event, "admitted", timeout=3)
    # sessions run out on their own too
    await patch_queue(qclient, queue_settings, event, session_seconds=1)
    await call(qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, "two"))
    await wait_status(qclient, queue_settings, "three", event, "admitted", timeout=3)

    async def three() -> int:
        return (await queue_status(qclient, queue_settings, "three", event))[0]

    await eventually(three, lambda s: s == 404, 4, "the 1 s session to end")
    figures = await get_queue(qclient, queue_settings, event)
    assert (figures["active"], figures["admitted_total"]) == (0, 3)
    # leaving twice, or without having joined, is fine
    for _ in range(2):
        status, _, _ = await call(
            qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, "two")
        )
        assert status == 204


async def test_booking_ends_the_session_and_hands_the_slot_on(paying_queue_settings, pool) -> None:
    from tests.integration.payments.support import booking_stack

    settings = paying_queue_settings
    event = await queue_event(pool)
    async with booking_stack(settings, pool) as client:
        await patch_queue(client, settings, event, admit_per_minute=6000, max_active=1)
        await join(client, settings, "buyer", event)
        await join(client, settings, "next-in-line", event)
        token = (await wait_status(client, settings, "buyer", event, "admitted"))["admission_token"]
        me = {**fan(settings, "buyer"), "X-Admission-Token": token}
        status, hold, _ = await call(
            client, "POST", "/booking/reserve", me, {"event_id": event, "quantity": 2}
        )
        assert status == 201, hold
        _, still, _ = await call(client, "GET", f"/queue/{event}/status", me)
        assert still["status"] == "admitted"  # holding seats is not booking them
        status, booking, _ = await call(
            client,
            "POST",
            "/booking/confirm",
            fan(settings, "buyer"),
            {"hold_id": hold["hold_id"], "payment_method": "pm_card_visa"},
        )
        assert status == 201, booking
        status, problem = await queue_status(client, settings, "buyer", event)
        assert (status, problem["code"]) == (404, "not_in_queue")
        await wait_status(client, settings, "next-in-line", event, "admitted", timeout=3)


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


async def test_operators_read_and_change_a_queue(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool)
    await in_snapshot(qclient, queue_settings, event)
    figures = await get_queue(qclient, queue_settings, event)
    for field in (
        "event_id",
        "admit_per_minute",
        "max_active",
        "paused",
        "session_seconds",
        "mode",
        "waiting",
        "active",
        "admitted_total",
        "claim_seconds",
        "admission_margin_percent",
        "all_held",
    ):
        assert field in figures, field
    assert figures["admit_per_minute"] == queue_settings.queue_admit_per_minute
    assert figures["claim_seconds"] == queue_settings.admission_claim_seconds
    assert figures["admission_margin_percent"] == queue_settings.queue_admission_margin_percent
    assert figures["mode"] == "manual" and figures["paused"] is False
    assert figures["inventory"] == {"available": 20, "reserved": 0, "booked": 0, "total": 20}
    changed = await patch_queue(
        qclient, queue_settings, event, admit_per_minute=120, max_active=7, session_seconds=300
    )
    assert (changed["admit_per_minute"], changed["max_active"], changed["session_seconds"]) == (
        120,
        7,
        300,
    )
    assert changed["mode"] == "manual"  # untouched
    window = await patch_queue(
        qclient, queue_settings, event, claim_seconds=45, admission_margin_percent=0
    )
    assert (window["claim_seconds"], window["admission_margin_percent"]) == (45, 0)
    assert window["session_seconds"] == 300  # untouched
    auto = await patch_queue(qclient, queue_settings, event, mode="auto")
    assert auto["mode"] == "auto" and 0 < auto["effective_admit_per_minute"] <= 120
    for bad in (
        {"admit_per_minute": -1},
        {"mode": "fast"},
        {"paused": 1},
        {"nope": 1},
        [1],
        {"claim_seconds": 0},
        {"claim_seconds": "60"},
        {"claim_seconds": 86_401},
        {"admission_margin_percent": -1},
        {"admission_margin_percent": 1.5},
        {"admission_margin_percent": True},
    ):
        status, problem, _ = await call(
            qclient, "PATCH", f"/admin/queues/{event}", admin(queue_settings), bad
        )
        assert (status, problem["code"]) == (400, "validation_error"), bad
    kept = await get_queue(qclient, queue_settings, event)
    assert (kept["max_active"], kept["claim_seconds"], kept["admission_margin_percent"]) == (
        7,
        45,
        0,
    )
    status, listing, _ = await call(qclient, "GET", "/admin/queues", admin(queue_settings))
    assert status == 200
    mine = [item for item in listing["items"] if item["event_id"] == event]
    assert mine and mine[0]["max_active"] == 7
    assert "booking_health" in listing


def ended(reason: str) -> float:
    return (
        REGISTRY.get_sample_value("ticketing_queue_sessions_ended_total", {"reason": reason}) or 0.0
    )


async def test_an_admission_nobody_claims_goes_to_the_next_fan(
    qclient, queue_settings, pool
) -> None:
    """claim_seconds 1: the admitted fan who holds nothing in that time loses the
    admission (session ended, "unclaimed", counted), the token stops working for reserve,
    and the next fan gets the place; the fan who held seats in time keeps the session
    (the control: it is the claim window, not the session's end, that ended the other)."""
    event = await queue_event(pool)
    await in_snapshot(qclient, queue_settings, event)
    await patch_queue(
        qclient,
        queue_settings,
        event,
        paused=True,
        claim_seconds=1,
        max_active=2,
        admit_per_minute=60_000,
        session_seconds=600,
    )
    for user in ("idle", "quick", "next"):
        await join(qclient, queue_settings, user, event)
    before = ended("unclaimed")
    await patch_queue(qclient, queue_settings, event, paused=False)
    idle = await wait_status(qclient, queue_settings, "idle", event, "admitted", 3)
    quick = await wait_status(qclient, queue_settings, "quick", event, "admitted", 3)
    status, hold, _ = await call(
        qclient,
        "POST",
        "/booking/reserve",
        {**fan(queue_settings, "quick"), "X-Admission-Token": quick["admission_token"]},
        {"event_id": event, "quantity": 2},
    )
    assert status == 201, hold
    _, waiting = await queue_status(qclient, queue_settings, "next", event)
    assert waiting["status"] == "waiting"  # max_active 2: no place for a third yet
    await wait_status(qclient, queue_settings, "next", event, "admitted", timeout=3)
    status, problem = await queue_status(qclient, queue_settings, "idle", event)
    assert (status, problem["code"]) == (404, "not_in_queue")
    status, problem, _ = await call(
        qclient,
        "POST",
        "/booking/reserve",
        {**fan(queue_settings, "idle"), "X-Admission-Token": idle["admission_token"]},
        {"event_id": event, "quantity": 1},
    )
    assert (status, problem["code"]) == (403, "admission_invalid"), problem
    assert ended("unclaimed") - before >= 1
    await asyncio.sleep(1.2)  # past quick's claim window too
    _, still = await queue_status(qclient, queue_settings, "quick", event)
    assert still["status"] == "admitted"  # holding seats: the window is over for them


@dataclass
class LateLine:
    """A line with a 1 s claim window whose fans are admitted before any booking worker
    runs (so their reserves outlast the front door's wait); ``start`` starts the worker."""

    settings: Settings
    client: TestClient
    event: int
    start: Callable[[], Awaitable[None]]

    async def admitted(self, user: str) -> dict:
        return await wait_status(self.client, self.settings, user, self.event, "admitted", 3)


@contextlib.asynccontextmanager
async def admitted_before_any_worker(
    queue_settings, pool, amqp_url: str, rpc_timeout: float, users: tuple[str, ...]
) -> AsyncIterator[LateLine]:
    settings = settings_with(
        queue_settings, amqp_url=amqp_url, booking_rpc_timeout_seconds=rpc_timeout
    )
    event = await queue_event(pool)
    async with contextlib.AsyncExitStack() as stack:
        client = await open_client(settings)
        stack.push_async_callback(client.close)

        async def start() -> None:
            await stack.enter_async_context(running_worker(settings, pool))

        await in_snapshot(client, settings, event)
        await patch_queue(
            client,
            settings,
            event,
            paused=True,
            claim_seconds=1,
            max_active=5,
            admit_per_minute=60_000,
            session_seconds=600,
        )
        for user in users:
            await join(client, settings, user, event)
        await patch_queue(client, settings, event, paused=False)
        yield LateLine(settings, client, event, start)


async def test_a_reserve_still_under_way_keeps_the_claim_window_open(
    queue_settings, pool, isolated_amqp
) -> None:
    """No booking worker at first: the fan's reserve waits longer than the front door does
    (503) and than the claim window (1 s). Once a worker comes, the command is applied; the
    fan's retry with the same Idempotency-Key gets its 201, not admission_invalid, and the
    hold is theirs (before, the window closed meanwhile and those seats were nobody's until
    the hold expired). The control: a fan admitted alongside who sends nothing loses the
    admission to the same 1 s window."""
    async with admitted_before_any_worker(
        queue_settings, pool, isolated_amqp, 1.5, ("slow-buyer", "idle")
    ) as line:
        client, settings, event = line.client, line.settings, line.event
        admitted = await line.admitted("slow-buyer")
        await line.admitted("idle")
        me = {
            **fan(settings, "slow-buyer"),
            "X-Admission-Token": admitted["admission_token"],
            "Idempotency-Key": "seats-please",
        }
        body = {"event_id": event, "quantity": 2}
        status, problem, _ = await call(client, "POST", "/booking/reserve", me, body)
        assert (status, problem["code"]) == (503, "backend_unavailable"), problem
        await line.start()
        await asyncio.sleep(0.5)  # the window would have closed by now without the reserve
        status, hold, _ = await call(client, "POST", "/booking/reserve", me, body)
        assert status == 201, hold
        owner = await pool.fetchval(
            "SELECT user_id FROM holds WHERE id = $1::uuid", hold["hold_id"]
        )
        assert owner == "slow-buyer"
        _, still = await queue_status(client, settings, "slow-buyer", event)
        assert still["status"] == "admitted"
        status, problem = await queue_status(client, settings, "idle", event)
        assert (status, problem["code"]) == (404, "not_in_queue")


async def test_a_retry_after_the_admission_ended_gets_the_hold_the_worker_made(
    queue_settings, pool, isolated_amqp
) -> None:
    """As above, but the fan's retry comes after even the kept claim window (here 5 s), so
    the admission has ended: the front door asks the worker for the stored reply of the
    same Idempotency-Key and answers the 201 (before, 403 admission_invalid, and the seats
    were nobody's until the hold expired). The control: the same fan asking with another
    key is refused, and no second hold is made for it, then or later."""
    async with admitted_before_any_worker(
        queue_settings, pool, isolated_amqp, 0.5, ("late-buyer",)
    ) as line:
        client, settings, event = line.client, line.settings, line.event
        admitted = await line.admitted("late-buyer")
        me = {**fan(settings, "late-buyer"), "X-Admission-Token": admitted["admission_token"]}
        body = {"event_id": event, "quantity": 2}
        status, problem, _ = await call(
            client, "POST", "/booking/reserve", {**me, "Idempotency-Key": "first"}, body
        )
        assert (status, problem["code"]) == (503, "backend_unavailable"), problem
        await line.start()

        async def holds() -> list:
            return await pool.fetch(
                "SELECT id::text FROM holds WHERE user_id = 'late-buyer' AND event_id = $1",
                event,
            )

        made = await eventually(holds, lambda rows: len(rows) == 1, 10, "the worker's hold")
        await eventually(
            lambda: queue_status(client, settings, "late-buyer", event),
            lambda answer: answer[0] == 404,
            10,
            "the admission to end",
        )
        status, problem, _ = await call(
            client, "POST", "/booking/reserve", {**me, "Idempotency-Key": "second"}, body
        )
        assert (status, problem["code"]) == (403, "admission_invalid"), problem
        status, hold, _ = await call(
            client, "POST", "/booking/reserve", {**me, "Idempotency-Key": "first"}, body
        )
        assert status == 201, hold
        assert hold["hold_id"] == made[0]["id"]
        await asyncio.sleep(0.5)  # a refused "second" that acted late would show here
        assert len(await holds()) == 1


async def test_a_patch_is_in_force_in_another_process_within_two_seconds(
    qclient, queue_settings, pool
) -> None:
    other = await open_client(queue_settings)  # a second process, as far as Redis knows
    try:
        event = await queue_event(pool)
        await patch_queue(qclient, queue_settings, event, paused=True)
        started = time.monotonic()
        _, body = await join(other, queue_settings, "p2", event)
        assert body["status"] == "paused"
        await patch_queue(other, queue_settings, event, paused=False, admit_per_minute=6000)
        await wait_status(qclient, queue_settings, "p2", event, "admitted", timeout=2)
        assert time.monotonic() - started < 4
    finally:
        await other.close()


async def test_queue_metrics_are_served(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool)
    await join(qclient, queue_settings, "metered", event)
    await in_snapshot(qclient, queue_settings, event)

    async def scrape() -> str:
        async with qclient.get("/metrics") as resp:
            return await resp.text()

    text = await eventually(
        scrape, lambda t: f'ticketing_queue_length{{event_id="{event}"' in t, 5, "queue gauges"
    )
    for name in (
        "ticketing_queue_joins_total",
        "ticketing_queue_admissions_total",
        "ticketing_queue_active_sessions",
        "ticketing_queue_open_sockets",
        "ticketing_queue_push_lag_seconds",
        "ticketing_queue_estimated_wait_seconds",
        "ticketing_queue_actual_wait_seconds",
        "ticketing_queue_admit_rate_per_minute",
    ):
        assert name in text, name


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


async def test_a_fan_told_too_few_seats_are_left_keeps_the_turn_only_for_a_grace(
    qclient, queue_settings, pool, monkeypatch
) -> None:
    """Near the end of a sale a fan asks for more seats than are left (409
    tickets_unavailable): they may ask again for fewer, but a fan who walks away then
    holds the next fan up for the grace, not the whole claim window (10 minutes here).
    The control: an admitted fan who asked for nothing keeps the turn meanwhile."""
    from waitingroom.booking import reserve

    monkeypatch.setattr(reserve, "CLAIM_GRACE_SECONDS", 1.0)
    event = await queue_event(pool, [Section("Box", 1, 4, 5000)])
    await in_snapshot(qclient, queue_settings, event)
    await patch_queue(
        qclient,
        queue_settings,
        event,
        paused=True,
        claim_seconds=600,
        admit_per_minute=60_000,
        session_seconds=600,
    )
    for user in ("greedy", "patient", "next"):
        await join(qclient, queue_settings, user, event)
    await patch_queue(qclient, queue_settings, event, paused=False)
    greedy = await wait_status(qclient, queue_settings, "greedy", event, "admitted", 3)
    await wait_status(qclient, queue_settings, "patient", event, "admitted", 3)
    _, waiting = await queue_status(qclient, queue_settings, "next", event)
    assert waiting["status"] == "waiting"  # 4 seats serve two fans of 2 (the prior)
    status, problem, _ = await call(
        qclient,
        "POST",
        "/booking/reserve",
        {**fan(queue_settings, "greedy"), "X-Admission-Token": greedy["admission_token"]},
        {"event_id": event, "quantity": 5},
    )
    assert (status, problem["code"]) == (409, "tickets_unavailable"), problem
    await wait_status(qclient, queue_settings, "next", event, "admitted", timeout=3)
    status, problem = await queue_status(qclient, queue_settings, "greedy", event)
    assert (status, problem["code"]) == (404, "not_in_queue")
    _, patient = await queue_status(qclient, queue_settings, "patient", event)
    assert patient["status"] == "admitted"
