"""Real worker processes: SIGKILL in the middle of batches loses nothing and applies nothing
twice; holds expire on a real TTL through the sweeper; SIGTERM stops cleanly."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.integration.booking.support import (
    WorkerProcesses,
    audit,
    call,
    fan,
    make_event,
    open_client,
    ticket_ids,
    wait_for_consumers,
)
from tests.support import eventually, settings_with
from ticketing.domain.seating import Section

REQUESTS = 300


@pytest.mark.slow
async def test_killed_worker_loses_nothing_and_applies_nothing_twice(
    booking_settings, pool, isolated_amqp, worker_processes
) -> None:
    settings = settings_with(
        booking_settings, amqp_url=isolated_amqp, booking_rpc_timeout_seconds=30
    )
    event = await make_event(pool, [Section("Floor", 20, 20, 1000)])
    workers = WorkerProcesses(settings)
    worker_processes.append(workers)
    workers.start(2)
    await wait_for_consumers(isolated_amqp, 2)
    client = await open_client(settings)
    answered = 0
    try:

        async def one(i: int) -> dict:
            nonlocal answered
            headers = {**fan(settings, f"k-fan-{i}"), "Idempotency-Key": f"k-{i}"}
            body = {"event_id": event, "quantity": 1}
            for _ in range(5):  # a fan retrying with the same key after a 503
                status, reply, _ = await call(client, "POST", "/booking/reserve", headers, body)
                if status != 503:
                    break
            answered += 1
            assert status == 201, reply
            return reply

        tasks = [asyncio.ensure_future(one(i)) for i in range(REQUESTS)]

        async def progress() -> int:
            return answered

        await eventually(progress, lambda n: n >= REQUESTS // 5, 30, "the first replies")
        workers.kill(0)  # mid-run: it has batches in hand, committed or not
        replies = await asyncio.gather(*tasks)
    finally:
        await client.close()
    assert workers.procs[0].returncode == -9
    holds = await pool.fetch(
        "SELECT id, user_id, ticket_ids FROM holds WHERE event_id = $1 AND status = 'held'",
        event,
    )
    assert len(holds) == REQUESTS  # one hold per fan: nothing lost, nothing twice
    by_user = {h["user_id"]: str(h["id"]) for h in holds}
    assert {by_user[f"k-fan-{i}"] for i in range(REQUESTS)} == {r["hold_id"] for r in replies}
    reserved = await pool.fetchval(
        "SELECT count(*) FROM tickets WHERE event_id = $1 AND status = 'reserved'", event
    )
    assert reserved == REQUESTS
    assert await audit(pool, event) == []
    assert workers.stop()[1] == 0  # the survivor stops cleanly on SIGTERM


@pytest.mark.slow
async def test_holds_expire_on_time_and_are_not_honoured_late(
    booking_settings, pool, isolated_amqp, worker_processes
) -> None:
    settings = settings_with(
        booking_settings,
        amqp_url=isolated_amqp,
        hold_ttl_seconds=1,
        sweep_interval_seconds=0.2,
    )
    event = await make_event(pool, [Section("Floor", 1, 4, 1000)])
    seats = await ticket_ids(pool, event)
    workers = WorkerProcesses(settings)
    worker_processes.append(workers)
    workers.start(1)
    await wait_for_consumers(isolated_amqp, 1)
    client = await open_client(settings)
    try:
        me = fan(settings, "ttl-fan")
        status, hold, _ = await call(
            client, "POST", "/booking/reserve", me, {"event_id": event, "ticket_ids": seats[:2]}
        )
        assert status == 201

        async def statuses() -> list:
            return await pool.fetch(
                "SELECT status::text FROM tickets WHERE id = ANY($1)", seats[:2]
            )

        await eventually(
            statuses, lambda rows: all(r[0] == "available" for r in rows), 5, "the sweeper"
        )
        assert (
            await pool.fetchval(
                "SELECT status FROM holds WHERE id = $1", uuid.UUID(hold["hold_id"])
            )
            == "expired"
        )
        status, problem, _ = await call(client, "DELETE", f"/booking/holds/{hold['hold_id']}", me)
        assert (status, problem["code"]) == (409, "hold_expired")
        status, _, _ = await call(
            client,
            "POST",
            "/booking/reserve",
            fan(settings, "ttl-next"),
            {"event_id": event, "ticket_ids": seats[:2]},
        )
        assert status == 201
    finally:
        await client.close()
    assert workers.stop() == [0]
