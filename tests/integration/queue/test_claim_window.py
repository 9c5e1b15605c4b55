"""The claim window: an admission nobody claims in time goes to the next fan, a reserve
still under way keeps the window open, a retry after the admission ended still gets the
hold the worker made, and a fan told too few seats are left keeps the turn only for a
grace."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from tests.integration.booking.support import call, fan, open_client, running_worker
from tests.integration.queue.support import (
    in_snapshot,
    join,
    patch_queue,
    queue_event,
    queue_status,
    wait_status,
)
from tests.support import eventually, settings_with
from ticketing.config import Settings
from ticketing.domain.seating import Section


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
