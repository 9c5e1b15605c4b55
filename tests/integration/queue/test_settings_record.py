"""Issue 12, item 7: what operators set for a queue survives a Redis restart with its data
lost. The settings are on record in PostgreSQL (``queue_settings``), written by the PATCH
before Redis; the copy in Redis is written back from it, and TICK admits nobody in a queue
whose copy is missing meanwhile.

The controls: the same loss without the record comes back at the defaults, unpaused, and
admits (so the record is what keeps the pause); a copy without a version admits nobody
until written, in TICK itself. And the PATCH's order: PostgreSQL down answers 503 and
leaves Redis as it was; Redis failing after the record answers 503 and the record is in
force within seconds anyway.

Each loss deletes only this test's event's keys under this run's prefix (the shared Redis
holds other runs' keys), every one of them, as a restart without persistence would."""

from __future__ import annotations

import asyncio
import secrets
import time

import asyncpg
import redis.exceptions

from tests.integration.booking.support import call
from tests.integration.queue.support import (
    admin,
    get_queue,
    in_snapshot,
    join,
    lose_the_queue,
    patch_queue,
    queue_event,
    queue_status,
    wait_status,
)
from tests.support import eventually, free_port
from ticketing.config import Settings
from waitingroom.queue.runtime import QUEUE_KEY
from waitingroom.queue.store_config import NOTHING_SET, SETTINGS_RECORD_KEY, StoredSettings

# How long fans who joined after a loss are watched: past the next count, the draw put
# back and the settings written back (each within about a second), so a queue that could
# admit them would have.
WATCH_SECONDS = 4.0


async def on_record(pool: asyncpg.Pool, event: int) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM queue_settings WHERE event_id = $1", event)


async def settings_in_force(client, settings: Settings, event: int, **wanted) -> dict:
    async def probe() -> dict:
        return await get_queue(client, settings, event)

    return await eventually(
        probe,
        lambda q: all(q[name] == value for name, value in wanted.items()),
        10,
        f"event {event} at {wanted}",
    )


async def everything_else_back(client, settings: Settings, event: int) -> dict:
    """The queue's figures once the count and the draw are back after a loss: from then on
    a queue that could admit, would."""

    async def probe() -> dict:
        return await get_queue(client, settings, event)

    return await eventually(
        probe,
        lambda q: q["drawn"] and q["inventory"] is not None,
        15,
        f"event {event} counted and drawn again",
    )


async def paused_with_a_rate(client, settings: Settings, pool) -> int:
    """A queue its operator paused and tuned, with nobody admitted yet."""
    event = await queue_event(pool)
    await in_snapshot(client, settings, event)
    body = await patch_queue(client, settings, event, paused=True, admit_per_minute=6000)
    assert (body["paused"], body["admit_per_minute"]) == (True, 6000), body
    body = await patch_queue(client, settings, event, max_active=7)  # another field, later
    assert (body["paused"], body["admit_per_minute"], body["max_active"]) == (True, 6000, 7)
    row = await on_record(pool, event)
    assert row is not None
    assert (row["paused"], row["admit_per_minute"], row["max_active"]) == (True, 6000, 7)
    assert row["session_seconds"] is None and row["mode"] is None  # not set: the default
    assert row["updated_by"] == "ops"
    return event


async def test_a_paused_queue_comes_back_paused_with_its_rate_after_a_redis_loss(
    qclient, queue_settings, pool
) -> None:
    event = await paused_with_a_rate(qclient, queue_settings, pool)

    await lose_the_queue(qclient, event)
    lost_at = time.monotonic()
    fans = [f"after-loss-{i}" for i in range(5)]
    for user in fans:
        status, body = await join(qclient, queue_settings, user, event)
        assert status == 200, body
        assert body["status"] in ("waiting", "paused"), body

    back = await settings_in_force(
        qclient, queue_settings, event, paused=True, admit_per_minute=6000, max_active=7
    )
    assert back["session_seconds"] == queue_settings.queue_session_seconds  # never set
    # Nobody admitted meanwhile, nor after: the fans who came after the loss keep waiting
    # while the rest of the queue (the count, the draw) is back as it was.
    # Watched past the rest's return too: the count and the draw may come back late on a
    # busy machine, and before them nobody could be admitted anyway.
    await everything_else_back(qclient, queue_settings, event)
    watch_until = max(lost_at + WATCH_SECONDS, time.monotonic() + 2)
    while time.monotonic() < watch_until:
        figures = await get_queue(qclient, queue_settings, event)
        assert (figures["active"], figures["admitted_total"]) == (0, 0), figures
        for user in fans:
            _, status = await queue_status(qclient, queue_settings, user, event)
            assert status["status"] in ("waiting", "paused"), status
        await asyncio.sleep(0.2)
    figures = await get_queue(qclient, queue_settings, event)
    assert figures["drawn"] and figures["inventory"] is not None, figures
    assert figures["waiting"] == len(fans)
    for place, user in enumerate(fans, 1):
        _, status = await queue_status(qclient, queue_settings, user, event)
        assert (status["status"], status["position"]) == ("paused", place), status

    # The operator resumes: admission goes on at their rate, not the default's one a second.
    await patch_queue(qclient, queue_settings, event, paused=False)
    for user in fans:
        await wait_status(qclient, queue_settings, user, event, "admitted", timeout=5)
    assert (await get_queue(qclient, queue_settings, event))["active"] == len(fans)


async def test_nobody_is_admitted_while_the_record_cannot_be_read_after_a_loss(
    qclient, queue_settings, pool
) -> None:
    """The window between the loss and the write-back, held open: the record's table
    locked, so the write-back waits, while the count and the draw come back. Nobody is
    admitted under the defaults meanwhile (statuses and figures read the defaults until
    then: the copy is what they read)."""
    event = await paused_with_a_rate(qclient, queue_settings, pool)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE queue_settings IN ACCESS EXCLUSIVE MODE")
        await lose_the_queue(qclient, event)
        status, body = await join(qclient, queue_settings, "in-the-window", event)
        assert status == 200, body

        async def ready() -> dict:
            return await get_queue(qclient, queue_settings, event)

        # Everything but the settings is back: a queue that knew them would admit.
        figures = await eventually(
            ready, lambda q: q["drawn"] and q["waiting"] == 1, 10, "the queue drawn again"
        )
        assert figures["paused"] is False  # the defaults, read from a copy not yet written
        await asyncio.sleep(2)
        figures = await get_queue(qclient, queue_settings, event)
        assert (figures["active"], figures["admitted_total"]) == (0, 0), figures
        _, status = await queue_status(qclient, queue_settings, "in-the-window", event)
        assert status["status"] == "waiting", status
    await settings_in_force(
        qclient, queue_settings, event, paused=True, admit_per_minute=6000, max_active=7
    )
    await asyncio.sleep(1)
    figures = await get_queue(qclient, queue_settings, event)
    assert (figures["active"], figures["admitted_total"]) == (0, 0), figures


async def test_without_the_record_the_same_loss_comes_back_at_the_defaults(
    qclient, queue_settings, pool
) -> None:
    """The control: the same queue, the same loss, its record gone first. Redis alone held
    nothing that survives: the queue is back unpaused at the defaults and admits."""
    event = await paused_with_a_rate(qclient, queue_settings, pool)
    await pool.execute("DELETE FROM queue_settings WHERE event_id = $1", event)

    await lose_the_queue(qclient, event)
    fans = [f"control-{i}" for i in range(2)]
    for user in fans:
        status, body = await join(qclient, queue_settings, user, event)
        assert status == 200, body

    back = await settings_in_force(
        qclient,
        queue_settings,
        event,
        paused=False,
        admit_per_minute=queue_settings.queue_admit_per_minute,
        max_active=queue_settings.queue_max_active,
    )
    assert back["admit_per_minute"] != 6000
    await everything_else_back(qclient, queue_settings, event)
    # A deadline, not a watch: on a busy machine the loops that bring the rest back run
    # late, and the control only has to show that this queue admits at all.
    await wait_status(qclient, queue_settings, fans[0], event, "admitted", timeout=15)


async def test_tick_admits_nobody_until_the_settings_are_known(qclient) -> None:
    """The window between a loss and the write-back, in TICK itself, on an event no loop
    ticks or restores (not in the snapshot): everything else ready to admit, the settings'
    copy missing. Then a copy of "nothing set" admits; a paused one does not, and an older
    copy never overwrites a newer one."""
    store = qclient.app[QUEUE_KEY].store
    missing, paused = (2_000_000_000 + secrets.randbelow(10**8) for _ in range(2))
    for event in (missing, paused):
        await store.set_state(event, drawn=1, available=10)
        await store.redis.zadd(store.key(event, "waiting"), {"first": 1, "second": 2})
    try:
        for _ in range(3):
            result = await store.tick(missing)
            assert result.admitted == [], result
            await asyncio.sleep(0.1)
        assert await store.write_config(missing, NOTHING_SET)
        assert not await store.write_config(missing, NOTHING_SET)  # as new already
        result = await store.tick(missing)
        assert [user for user, _, _ in result.admitted] == ["first"], result

        assert await store.write_config(paused, StoredSettings(5, {"paused": True}))
        assert not await store.write_config(paused, StoredSettings(4, {"paused": False}))
        assert (await store.figures(paused)).config.paused
        for _ in range(3):
            assert (await store.tick(paused)).admitted == []
            await asyncio.sleep(0.1)
        assert await store.write_config(paused, StoredSettings(6, {"paused": False}))
        assert [user for user, _, _ in (await store.tick(paused)).admitted] == ["first"]
    finally:
        for event in (missing, paused):
            keys = [k async for k in store.redis.scan_iter(match=store.key(event, "*"))]
            await store.redis.delete(*keys)


async def test_a_patch_with_postgresql_unreachable_is_a_503_and_changes_nothing(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    await in_snapshot(qclient, queue_settings, event)
    await patch_queue(qclient, queue_settings, event, admit_per_minute=1234)
    store = qclient.app[QUEUE_KEY].store
    config_key = store.key(event, "config")
    copy_before = await store.redis.hgetall(config_key)
    row_before = await on_record(pool, event)

    # The record's pool to a port nobody listens on: a refused connection, as when the
    # server is down (the event itself is in the snapshot: no lookup needs PostgreSQL).
    record = qclient.app[SETTINGS_RECORD_KEY]
    real = record.pool
    dead = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", min_size=0, timeout=1
    )
    record.pool = dead
    try:
        started = time.monotonic()
        status, problem, headers = await call(
            qclient,
            "PATCH",
            f"/admin/queues/{event}",
            admin(queue_settings),
            {"paused": True, "admit_per_minute": 99},
        )
        assert (status, problem["code"]) == (503, "backend_unavailable"), problem
        assert headers["Retry-After"]
        assert time.monotonic() - started < 5
    finally:
        record.pool = real
        await dead.close()

    assert await store.redis.hgetall(config_key) == copy_before
    assert await on_record(pool, event) == row_before
    figures = await get_queue(qclient, queue_settings, event)
    assert (figures["paused"], figures["admit_per_minute"]) == (False, 1234), figures
    # PostgreSQL back: the same PATCH goes through.
    body = await patch_queue(qclient, queue_settings, event, paused=True, admit_per_minute=99)
    assert (body["paused"], body["admit_per_minute"]) == (True, 99), body


async def test_a_patch_whose_redis_write_fails_is_a_503_and_in_force_soon_after(
    qclient, queue_settings, pool, monkeypatch
) -> None:
    """PostgreSQL first: the record stands when Redis then fails, and the once-a-second
    restore brings the copy Redis still holds (an older one, not a missing one) up to it."""
    event = await queue_event(pool)
    await in_snapshot(qclient, queue_settings, event)
    await patch_queue(qclient, queue_settings, event, admit_per_minute=1234)
    store = qclient.app[QUEUE_KEY].store

    async def redis_fails(event_id, stored):
        raise redis.exceptions.ConnectionError("Redis went away")

    monkeypatch.setattr(store, "write_config", redis_fails)
    status, problem, _ = await call(
        qclient, "PATCH", f"/admin/queues/{event}", admin(queue_settings), {"paused": True}
    )
    assert (status, problem["code"]) == (503, "backend_unavailable"), problem
    monkeypatch.undo()

    row = await on_record(pool, event)
    assert row is not None and row["paused"] is True and row["admit_per_minute"] == 1234
    await settings_in_force(qclient, queue_settings, event, paused=True, admit_per_minute=1234)
