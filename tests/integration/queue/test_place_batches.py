"""Joins and status reads that arrive together go to Redis as one PLACE call, and each fan
is answered exactly as if it had come alone: a place of its own, first come first served,
the same place when it asks again, and its own rate limit."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from tests.support import settings_with
from ticketing.config import Settings
from waitingroom.queue import scripts as queue_scripts
from waitingroom.queue.store import Placement, QueueStore, RateLimited

EVENT = 7
ON_SALE_MS = 0  # long on sale: everyone joins the FIFO line


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


def fresh_store(redis: Redis, settings: Settings, **limits: int) -> QueueStore:
    own = settings_with(settings, redis_prefix=f"{settings.redis_prefix}batch-{uuid.uuid4().hex}:")
    return QueueStore(redis, settings_with(own, **limits) if limits else own)


def batch_metric(part: str) -> float:
    return REGISTRY.get_sample_value(f"ticketing_queue_place_batch_size_{part}") or 0.0


async def test_fans_joining_together_share_a_call_and_keep_their_order(
    redis: Redis, settings: Settings
) -> None:
    store = fresh_store(redis, settings)
    fans = [f"fan-{i:03d}" for i in range(300)]
    # ticketing_queue_place_batch_size counts this process's placement calls and their fans
    before = batch_metric("count"), batch_metric("sum")
    joined = await asyncio.gather(
        *(store.place(EVENT, fan, join=True, on_sale_ms=ON_SALE_MS) for fan in fans)
    )
    calls = batch_metric("count") - before[0]
    assert batch_metric("sum") - before[1] == len(fans)
    # Natural batching: the calls go together (at most 256 a call), so a crowd of 300
    # costs a handful of round trips, not 300.
    assert calls <= 4, calls
    assert [p.kind for p in joined] == ["waiting"] * len(fans)
    assert [p.rank for p in joined] == list(range(len(fans)))  # in the order they came
    assert len({p.place for p in joined}) == len(fans)
    assert all(p.new == 1 for p in joined)

    again = await asyncio.gather(
        *(store.place(EVENT, fan, join=True, on_sale_ms=ON_SALE_MS) for fan in reversed(fans))
    )
    assert [(p.place, p.rank, p.new) for p in reversed(again)] == [
        (p.place, p.rank, 0) for p in joined
    ]
    # A status read of someone who never joined places nobody.
    ghost = await store.place(EVENT, "ghost", join=False, on_sale_ms=ON_SALE_MS)
    assert ghost.kind == "none"
    assert (await store.place(EVENT, fans[-1], join=False, on_sale_ms=ON_SALE_MS)).rank == 299


async def test_a_fans_calls_in_one_batch_count_against_their_own_limit(
    redis: Redis, settings: Settings
) -> None:
    # 30 a minute with a burst of 5 each; a roomy per-address limit.
    store = fresh_store(redis, settings, queue_user_rate_per_minute=30)
    greedy = [
        store.place(EVENT, "greedy", join=True, on_sale_ms=ON_SALE_MS, address="10.0.0.1")
        for _ in range(8)
    ]
    polite = store.place(EVENT, "polite", join=True, on_sale_ms=ON_SALE_MS, address="10.0.0.2")
    results = await asyncio.gather(*greedy, polite, return_exceptions=True)
    *mine, theirs = results
    assert sum(isinstance(r, Placement) for r in mine) == 5
    refused = [r for r in mine if isinstance(r, RateLimited)]
    assert len(refused) == 3 and all(1 <= r.retry_after_seconds <= 2 for r in refused)
    assert isinstance(theirs, Placement) and theirs.kind == "waiting"
    # A refused call changed nothing: the greedy fan holds one place, ahead of the other.
    first = await store.place(EVENT, "greedy", join=False, on_sale_ms=ON_SALE_MS)
    assert (first.rank, theirs.rank) == (0, 1)
    # Without an address (the service's own reads) no limit applies.
    assert (await store.place(EVENT, "greedy", join=False, on_sale_ms=ON_SALE_MS)).rank == 0


async def test_an_address_limit_holds_across_fans(redis: Redis, settings: Settings) -> None:
    store = fresh_store(redis, settings, queue_ip_rate_per_minute=60)  # a burst of 10
    results = await asyncio.gather(
        *(
            store.place(EVENT, f"net-{i}", join=True, on_sale_ms=ON_SALE_MS, address="10.9.9.9")
            for i in range(14)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Placement) for r in results) == 10
    assert sum(isinstance(r, RateLimited) for r in results) == 4
    started = time.monotonic()
    # One more is allowed once an interval (1 s) has passed.
    while True:
        try:
            await store.place(
                EVENT, "net-late", join=True, on_sale_ms=ON_SALE_MS, address="10.9.9.9"
            )
            break
        except RateLimited:
            assert time.monotonic() - started < 3
            await asyncio.sleep(0.1)


async def test_place_records_a_solved_challenge_as_used_once_in_the_same_step(
    redis: Redis, settings: Settings
) -> None:
    """The gateway's join (deploy/lua/queue_join.lua) hands PLACE the used-challenge key of
    the solution it checked: PLACE records it as it places the fan, refuses it ("used",
    nothing placed, nothing counted) the second time, and records none for an admitted fan
    or a limited call, whose challenge stays theirs to use at the waitingroom."""
    store = fresh_store(redis, settings, queue_user_rate_per_minute=30)  # a burst of 5
    key = store.key(EVENT, "")

    async def place(user: str, signature: str, ttl: int, limited: str = "1") -> list[str]:
        reply = await redis.evalsha(
            hashlib.sha1(queue_scripts.PLACE.encode()).hexdigest(),  # noqa: S324 - Redis' name
            9,
            *(key + name for name in ("waiting", "pre", "active", "seen", "state", "departed")),
            f"{key}rl:user:{user}",
            f"{key}rl:ip:10.0.0.1",
            f"{key}challenge:used:{signature}",
            *store._user_limit,  # the limits the store passes
            *store._ip_limit,
            user,
            "join",
            ON_SALE_MS,
            "",
            0,
            "",
            limited,
            ttl,
        )
        return [part.decode() if isinstance(part, bytes) else str(part) for part in reply]

    await store.load_place()
    # The control: a join without a challenge (ttl 0) records nothing under the key it gets.
    assert (await place("plain", "sig-0", 0))[0] == "waiting"
    assert await redis.exists(f"{key}challenge:used:sig-0") == 0

    first = await place("fan", "sig-1", 30)
    assert first[0] == "waiting" and first[5] == "1"  # placed, new
    assert 0 < await redis.ttl(f"{key}challenge:used:sig-1") <= 30
    # The same challenge again (by its fan, or anyone) is refused and places nobody.
    assert (await place("fan", "sig-1", 30))[0] == "used"
    assert (await place("thief", "sig-1", 30))[0] == "used"
    assert await redis.zscore(key + "waiting", "thief") is None
    # A refused reuse was not counted: the fan's burst of 5 still has 4 left (1 used above).
    assert [(await place("fan", f"again-{i}", 30))[0] for i in range(4)] == ["waiting"] * 4
    assert (await place("fan", "sig-limited", 30))[0] == "limited"
    assert await redis.exists(f"{key}challenge:used:sig-limited") == 0
    # An admitted fan's join is the waitingroom's: their challenge is left unused.
    await redis.zadd(key + "active", {"inside": int(time.time() * 1000) + 60_000})
    assert (await place("inside", "sig-inside", 30))[0] == "admitted"
    assert await redis.exists(f"{key}challenge:used:sig-inside") == 0
