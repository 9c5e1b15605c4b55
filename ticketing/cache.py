"""Redis cache of event views, shared by the reader (catalog_api) and the invalidators
(catalog_api's admin writes for read-your-writes, search_sync for every outbox change)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio import RedisCluster

from ticketing.redis_connect import RedisClient


def event_key(prefix: str, event_id: int) -> str:
    return f"{prefix}event:{event_id}"


async def get_views(
    redis: RedisClient, prefix: str, event_ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    if not event_ids:
        return {}
    keys = [event_key(prefix, i) for i in event_ids]
    # Each event's view is a key of its own slot in a cluster, where one MGET cannot span
    # slots: there redis-py sends one per node at once and puts the answers back in order.
    raw = await (
        redis.mget_nonatomic(keys) if isinstance(redis, RedisCluster) else redis.mget(keys)
    )
    return {i: json.loads(v) for i, v in zip(event_ids, raw, strict=True) if v is not None}


async def put_views(
    redis: RedisClient, prefix: str, views: Iterable[dict[str, Any]], ttl_seconds: int
) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for view in views:
            pipe.set(event_key(prefix, view["id"]), json.dumps(view), ex=ttl_seconds)
        await pipe.execute()


async def invalidate(redis: RedisClient, prefix: str, event_ids: Iterable[int]) -> None:
    keys = [event_key(prefix, i) for i in event_ids]
    if keys:
        await redis.delete(*keys)
