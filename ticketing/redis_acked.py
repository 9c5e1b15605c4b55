"""A script whose writes a replica has before anyone hears of them.

Redis replicates asynchronously: a primary that dies a moment after a write may take it
with it, and the replica promoted in its place never saw it. For most of what the services
keep in Redis that is a blip (a rate-limit count, a cached view). For an admission it is
not: the fan hears "admitted", then the promoted replica still has them waiting, and
admits them a second time later. ``WAIT`` closes that window: it blocks until this
connection's writes are on ``replicas`` replicas (or ``timeout_ms`` passes) and says how
many have them. It counts only the writes of the connection it is sent on, so it goes in
one pipeline with the script: the same connection, the same node (on a cluster, the node
of the keys' slot), one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError
from redis.typing import EncodableT

from ticketing.redis_connect import RedisClient


async def run_acknowledged(
    client: RedisClient,
    script: AsyncScript,
    keys: Sequence[str],
    args: Sequence[EncodableT],
    replicas: int,
    timeout_ms: int,
) -> tuple[Any, int]:
    """``script``'s reply, and how many replicas acknowledged its writes within
    ``timeout_ms`` (fewer than ``replicas`` when the wait ran out)."""
    reply, acked = await _run(client, script, keys, args, replicas, timeout_ms)
    if isinstance(reply, NoScriptError):  # a restarted node, or a replica just promoted
        await client.script_load(script.script)
        reply, acked = await _run(client, script, keys, args, replicas, timeout_ms)
    if isinstance(reply, Exception):
        raise reply
    if isinstance(acked, Exception):
        raise acked
    return reply, int(acked)


async def _run(
    client: RedisClient,
    script: AsyncScript,
    keys: Sequence[str],
    args: Sequence[EncodableT],
    replicas: int,
    timeout_ms: int,
) -> tuple[Any, Any]:
    async with client.pipeline(transaction=False) as pipe:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        if isinstance(client, RedisCluster):
            # WAIT has no key: sent by itself it would go to any node. Named, it joins the
            # script's command to that node, on that connection.
            node = client.get_node_from_key(keys[0])
            pipe.execute_command("WAIT", replicas, timeout_ms, target_nodes=node)
        else:
            pipe.execute_command("WAIT", replicas, timeout_ms)
        reply, acked = await pipe.execute(raise_on_error=False)
    return reply, acked
