"""The rate limiter shares round trips between concurrent checks without weakening them."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from ticketing.ratelimit import RateLimiter


async def test_concurrent_checks_allow_exactly_what_one_at_a_time_allows(settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        prefix = f"{settings.redis_prefix}rlp-{time.time_ns()}:"
        limiter = RateLimiter(redis, prefix, per_minute=60, burst=5)
        one_by_one = [(await limiter.check("alone")).allowed for _ in range(40)]
        together = await asyncio.gather(*(limiter.check("crowd") for _ in range(40)))
        assert sum(one_by_one) == sum(d.allowed for d in together) == 5
        # Many clients at once: each its own bucket, each answered its own.
        many = await asyncio.gather(*(limiter.check(f"fan-{i}") for i in range(600)))
        assert all(d.allowed for d in many)
    finally:
        await redis.aclose()


async def test_checks_survive_redis_forgetting_the_script(settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        prefix = f"{settings.redis_prefix}rlf-{time.time_ns()}:"
        limiter = RateLimiter(redis, prefix, per_minute=600, burst=50)
        assert (await limiter.check("a")).allowed
        await redis.script_flush()  # what a Redis restart does to loaded scripts
        answers = await asyncio.gather(*(limiter.check("a") for _ in range(10)))
        assert all(d.allowed for d in answers)
    finally:
        await redis.aclose()
