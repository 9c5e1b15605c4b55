"""What keeps fans out while others are in, and who loses a place: max_active is never
exceeded, a paused queue admits nobody until it resumes, and fans who stop listening are
dropped from the line (and may rejoin at the back)."""

from __future__ import annotations

import asyncio
import time

from tests.integration.booking.support import call, open_client
from tests.integration.queue.support import (
    get_queue,
    in_snapshot,
    join,
    join_many,
    patch_queue,
    queue_event,
    queue_status,
    socket_path,
    wait_status,
)
from tests.support import auth_header, eventually, settings_with
from waitingroom.queue.runtime import QUEUE_KEY


async def test_max_active_is_never_exceeded(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, max_active=3, admit_per_minute=60_000)
    fans = [f"cap-{i}" for i in range(12)]
    await join_many(qclient, queue_settings, event, fans)
    store = qclient.app[QUEUE_KEY].store
    active_key = store.key(event, "active")
    most, left = 0, set()
    deadline = time.monotonic() + 15
    # Fans leave as soon as they are in; the next ones take the free slots, never more.
    while len(left) < len(fans) and time.monotonic() < deadline:
        inside = [m.decode() for m in await store.redis.zrange(active_key, 0, -1)]
        most = max(most, len(inside))
        for user in inside[:1]:
            await call(qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, user))
            left.add(user)
        await asyncio.sleep(0.02)
    assert left == set(fans)
    assert most == 3  # full, and never over
    figures = await get_queue(qclient, queue_settings, event)
    assert (figures["admitted_total"], figures["active"], figures["waiting"]) == (12, 0, 0)


async def test_pause_holds_admission_and_resume_restarts_it(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool)
    await in_snapshot(qclient, queue_settings, event)
    await patch_queue(qclient, queue_settings, event, paused=True, admit_per_minute=60_000)
    await join(qclient, queue_settings, "patient", event)
    # a second of ticks (five per process) while paused admits nobody
    store = qclient.app[QUEUE_KEY].store

    async def ticked() -> bytes | None:  # when the admitters last ticked this queue
        return await store.redis.hget(store.key(event, "state"), "tokens_at")

    first = await eventually(ticked, lambda t: t is not None, 3, "a tick")
    await eventually(ticked, lambda t: int(t) - int(first) >= 1000, 3, "a second of ticks")
    body = await wait_status(qclient, queue_settings, "patient", event, "paused")
    assert (body["position"], body["eta_seconds"]) == (1, None)
    assert (await get_queue(qclient, queue_settings, event))["admitted_total"] == 0
    await patch_queue(qclient, queue_settings, event, paused=False)
    await wait_status(qclient, queue_settings, "patient", event, "admitted", timeout=2)


async def test_fans_who_stop_listening_lose_their_place(queue_settings, pool, worker) -> None:
    settings = settings_with(queue_settings, queue_abandon_seconds=2)
    event = await queue_event(pool)
    client = await open_client(settings)
    try:
        await patch_queue(client, settings, event, paused=True)
        for user in ("quiet", "poller", "listener"):
            await join(client, settings, user, event)
        socket = await client.ws_connect(await socket_path(client, settings, "listener", event))
        store = client.app[QUEUE_KEY].store

        async def waiting() -> int:
            # the poller polls as a fan's page would, every half second
            await queue_status(client, settings, "poller", event)
            return await store.redis.zcard(store.key(event, "waiting"))

        await in_snapshot(client, settings, event)
        await eventually(waiting, lambda n: n == 2, 8, "the quiet fan to be dropped")
        status, problem = await queue_status(client, settings, "quiet", event)
        assert (status, problem["code"]) == (404, "not_in_queue")
        for user, position in (("poller", 1), ("listener", 2)):
            _, body = await queue_status(client, settings, user, event)
            assert body["position"] == position, user
        # rejoining is allowed, at the back
        _, back = await join(client, settings, "quiet", event)
        assert back["position"] == 3
        await socket.close()
    finally:
        await client.close()
