"""A fan with the queue page open keeps their place however slow the push rounds are.

In a saturated process (the paid phase of an on-sale on two cores) a push round took
seconds; fans were counted as seen only when their round came, so 5% of an on-sale's fans
lost their place 60 s after joining with their socket open (`bench/onsale.py`, 2026-12-06).
Presence now has a loop of its own. Here the rounds are held up for longer than the
abandonment time: the listener stays in line; the control, the same with the presence
loop held up too, shows the fan is dropped otherwise."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.booking.support import open_client
from tests.integration.queue.support import (
    in_snapshot,
    join,
    patch_queue,
    queue_event,
    queue_status,
    socket_path,
)
from tests.support import eventually, settings_with
from waitingroom.queue.runtime import QUEUE_KEY

ABANDON_SECONDS = 2


@pytest.mark.parametrize("presence", [True, False], ids=["presence loop", "control: none"])
async def test_a_fan_with_an_open_socket_stays_in_line_while_rounds_are_slow(
    queue_settings, pool, worker, presence
) -> None:
    settings = settings_with(queue_settings, queue_abandon_seconds=ABANDON_SECONDS)
    event = await queue_event(pool)
    client = await open_client(settings)
    try:
        rounds = client.app[QUEUE_KEY].hub.rounds

        async def stuck(*_: object) -> None:  # a round of a saturated process, for a minute
            await asyncio.sleep(60)

        rounds._round = stuck  # type: ignore[method-assign]
        if not presence:
            rounds._presence = stuck  # type: ignore[method-assign]
        await patch_queue(client, settings, event, paused=True)
        for user in ("quiet", "listener"):
            await join(client, settings, user, event)
        await in_snapshot(client, settings, event)
        socket = await client.ws_connect(await socket_path(client, settings, "listener", event))
        store = client.app[QUEUE_KEY].store

        async def in_line() -> set[str]:
            members = await store.redis.zrange(store.key(event, "waiting"), 0, -1)
            return {m.decode() for m in members}

        # The quiet fan (no socket, no polls) is dropped after the abandonment time ...
        await eventually(in_line, lambda fans: "quiet" not in fans, 10, "the quiet fan dropped")
        # ... and the listener, whose page is open, is not: three abandonment times on.
        await asyncio.sleep(3 * ABANDON_SECONDS)
        if presence:
            assert await in_line() == {"listener"}
            _, body = await queue_status(client, settings, "listener", event)
            assert body["position"] == 1
        else:
            assert await in_line() == set()
        await socket.close()
    finally:
        await client.close()
