"""Many calls of one Lua script in one pipeline, on one Redis server or a Redis Cluster.

redis-py's pipeline of a single server loads a script it is given before running it; a
cluster's pipeline does not, and Redis keeps scripts in memory only, never passing SCRIPT
LOAD on to replicas: a restarted node or a replica just promoted has none. So the calls go
by SHA, and those a node answered NOSCRIPT are run again once the script is loaded (on
every primary of a cluster), the others not twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError
from redis.typing import EncodableT, KeyT

from ticketing.redis_connect import RedisClient

Call = tuple[Sequence[KeyT], Sequence[EncodableT]]  # (KEYS, ARGV)


async def run_each(client: RedisClient, script: AsyncScript, calls: Sequence[Call]) -> list[Any]:
    """``script``'s reply to each call, in order: one round trip (one per node of a
    cluster, sent at once), two when a node had to load the script. The first error any
    call met is raised, after every call has run."""
    replies = await _run(client, script, calls)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        await client.script_load(script.script)
        again = await _run(client, script, [calls[i] for i in missing])
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def _run(client: RedisClient, script: AsyncScript, calls: Sequence[Call]) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    return replies
