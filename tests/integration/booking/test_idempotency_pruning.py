"""Pruning stored command replies (processed_commands) against the real Postgres, and what
a fan retrying through the front door sees on either side of the retention."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from booking_worker.pruning import prune_processed_commands
from tests.integration.booking.support import call, fan, make_event
from tests.integration.payments.support import booking_stack
from tests.support import eventually, settings_with
from ticketing.config import Settings
from ticketing.domain.seating import Section

DAY = 24 * 3600.0
# The batch tests prune at a retention of their own, two hours: their rows (one and three
# hours old) are younger than the day the session-wide worker's sweeper prunes at, every
# second, so it never takes a batch from under them.
SHORT = 2 * 3600.0


def pruned_total() -> float:
    return REGISTRY.get_sample_value("booking_processed_commands_pruned_total") or 0.0


async def stored(pool: asyncpg.Pool, count: int, hours_old: float) -> list[str]:
    """``count`` stored replies written ``hours_old`` hours ago; their request ids."""
    ids = [f"prune-test:{uuid.uuid4().hex}" for _ in range(count)]
    await pool.executemany(
        "INSERT INTO processed_commands (request_id, type, reply, created_at)"
        " VALUES ($1, 'booking.reserve', '{\"status\": 201, \"body\": {}}',"
        " now() - make_interval(secs => $2))",
        [(i, hours_old * 3600) for i in ids],
    )
    return ids


async def still_there(pool: asyncpg.Pool, ids: list[str]) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM processed_commands WHERE request_id = ANY($1)", ids
    )


@pytest.fixture
async def api(
    booking_settings: Settings, isolated_amqp: str, pool: asyncpg.Pool
) -> AsyncIterator[TestClient]:
    async with booking_stack(settings_with(booking_settings, amqp_url=isolated_amqp), pool) as api:
        yield api


@pytest.fixture
async def no_backlog(pool: asyncpg.Pool) -> None:
    """Nothing past the short retention left by other tests, so counts are this test's."""
    while await prune_processed_commands(pool, SHORT):
        pass


async def test_old_replies_go_a_batch_at_a_time_and_recent_ones_stay(
    pool: asyncpg.Pool, no_backlog: None
) -> None:
    old = await stored(pool, 2500, hours_old=3)
    recent = await stored(pool, 300, hours_old=1)
    counted = pruned_total()

    # At most two statements of 1,000 rows: the rest waits for the next run.
    assert await prune_processed_commands(pool, SHORT, batch=1000, max_batches=2) == 2000
    assert await still_there(pool, old) == 500
    assert await prune_processed_commands(pool, SHORT, batch=1000, max_batches=2) == 500
    assert await still_there(pool, old) == 0
    assert await still_there(pool, recent) == 300
    assert await prune_processed_commands(pool, SHORT) == 0
    assert pruned_total() - counted == 2500


async def test_a_reply_another_sweeper_is_deleting_is_skipped_not_waited_for(
    pool: asyncpg.Pool, no_backlog: None
) -> None:
    old = await stored(pool, 50, hours_old=3)
    async with pool.acquire() as other, other.transaction():
        await other.execute(
            "SELECT 1 FROM processed_commands WHERE request_id = $1 FOR UPDATE", old[0]
        )
        pruned = await asyncio.wait_for(prune_processed_commands(pool, SHORT, batch=20), 5)
        assert pruned == 49
    assert await still_there(pool, old) == 1
    assert await prune_processed_commands(pool, SHORT) == 1


async def test_a_retry_inside_the_retention_gets_its_stored_reply(
    api: TestClient, booking_settings: Settings, pool: asyncpg.Pool
) -> None:
    """The fan's retry with the same Idempotency-Key, a day minus an hour later (after a
    prune): the same hold, not a second one. Past the retention the key is forgotten,
    and the same request is a new one."""
    event_id = await make_event(pool, [Section("Floor", 1, 8, 5000)])
    headers = {**fan(booking_settings, "pruned-" + uuid.uuid4().hex[:6]), "Idempotency-Key": "k"}
    body = {"event_id": event_id, "quantity": 2}
    status, hold, _ = await call(api, "POST", "/booking/reserve", headers, body)
    assert status == 201, hold

    async def age_reply(hours: float) -> None:
        updated = await pool.execute(
            "UPDATE processed_commands SET created_at = now() - make_interval(secs => $2)"
            " WHERE reply->'body'->>'hold_id' = $1",
            hold["hold_id"],
            hours * 3600,
        )
        assert updated == "UPDATE 1"

    await age_reply(23)
    await prune_processed_commands(pool, DAY)
    status, again, _ = await call(api, "POST", "/booking/reserve", headers, body)
    assert (status, again) == (201, hold)
    holds = "SELECT count(*) FROM holds WHERE event_id = $1 AND status = 'held'"
    assert await pool.fetchval(holds, event_id) == 1

    await age_reply(25)
    assert await prune_processed_commands(pool, DAY) >= 1
    status, other, _ = await call(api, "POST", "/booking/reserve", headers, body)
    assert status == 201 and other["hold_id"] != hold["hold_id"], other
    assert await pool.fetchval(holds, event_id) == 2


async def test_a_running_workers_sweeper_prunes(worker, pool: asyncpg.Pool) -> None:
    """Wired in: the worker's once-a-second sweep prunes, not only the function."""
    old = await stored(pool, 3, hours_old=48)
    recent = await stored(pool, 2, hours_old=1)

    async def left() -> int:
        return await still_there(pool, old)

    await eventually(left, lambda n: n == 0, 15, "the sweeper to prune old replies")
    assert await still_there(pool, recent) == 2
