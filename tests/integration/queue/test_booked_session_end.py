"""A booked fan's session ends even when Redis refuses at the confirm: the end is tried
again in the background until Redis takes it (waitingroom/queue/session_end.py).

Found by the cluster chaos runs: a confirm landing in the seconds a Redis primary was
replaced left the booked fan admitted; at the sell-out every admitted fan goes back to the
front of the line, so a fan with tickets stood in line again. Here the app runs on a Redis
of its own, frozen (SIGSTOP) at the confirm: the first try fails for real (the control:
the fan is still admitted after it), and the fan's session ends once Redis thaws."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from deploy.redis_node import RedisNode
from tests.integration.booking.support import open_client
from tests.integration.queue.support import admitted_fan
from tests.support import eventually, free_port, settings_with
from ticketing.config import Settings
from waitingroom.queue.metrics import SESSION_ENDS_DEFERRED
from waitingroom.queue.runtime import QUEUE_KEY
from waitingroom.queue.session_end import end_session_after_booking


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisNode]:
    node = RedisNode("redis", free_port(), tmp_path, ['save ""', "appendonly no"])
    node.start()
    try:
        yield node
    finally:
        if node.pid is not None:
            os.killpg(node.pid, signal.SIGCONT)
        node.kill()


async def test_a_booked_fans_session_ends_once_redis_is_back(
    queue_settings: Settings, pool: asyncpg.Pool, worker: None, own_redis: RedisNode
) -> None:
    settings = settings_with(queue_settings, redis_url=f"redis://127.0.0.1:{own_redis.port}/0")
    client = await open_client(settings)
    try:
        event, _ = await admitted_fan(client, settings, pool, "booker")
        runtime = client.app[QUEUE_KEY]
        active = runtime.store.key(event, "active")
        assert await runtime.store.redis.zscore(active, "booker") is not None
        hold_id = str(uuid.uuid4())
        runtime.remember_hold(hold_id, event)  # as the 201 reserve before the confirm did
        ended = SESSION_ENDS_DEFERRED.labels("ended")._value.get()

        assert own_redis.pid is not None
        os.killpg(own_redis.pid, signal.SIGSTOP)
        try:
            await end_session_after_booking(runtime, "booker", hold_id)  # returns, deferred
            assert len(runtime.deferred_ends) == 1
        finally:
            os.killpg(own_redis.pid, signal.SIGCONT)
        # Control: the first try did fail; the fan is still admitted.
        assert await runtime.store.redis.zscore(active, "booker") is not None

        score = await eventually(
            lambda: runtime.store.redis.zscore(active, "booker"),
            lambda score: score is None,
            15,
            "the booked fan's session to end",
        )
        assert score is None
        assert SESSION_ENDS_DEFERRED.labels("ended")._value.get() == ended + 1
        assert not runtime.deferred_ends
    finally:
        await client.close()
