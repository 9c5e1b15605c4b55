"""What any node of a Redis Cluster answers, sent to one that answers: the queue's pub/sub
(PUBLISH and SUBSCRIBE, not sharded) and CLUSTER NODES.

Plain pub/sub reaches every node: a message published on any node, replicas included, is
passed over the cluster bus to every other node's subscribers. redis-py sends such a
command to one node it keeps (its "default node", or for a subscription the node of the
channel's slot) until a failed command makes it refresh its view of the cluster, which
happens only once the lost node is failed over: meanwhile each call sat through seconds of
retries against the dead node (seen: a PUBLISH held 4 s, so the fans' pages heard of a
change from the push rounds first). Here a call tries the node that answered last, then
the others in random order, each once. On one server or Sentinel's primary these are the
client's own calls.
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import RedisError

T = TypeVar("T")

# Per client, the node that answered last (its name, host:port).
_answered: weakref.WeakKeyDictionary[RedisCluster, str] = weakref.WeakKeyDictionary()


async def on_any_node(client: RedisCluster, call: Callable[[ClusterNode], Awaitable[T]]) -> T:
    """``call(node)``'s answer from the first node that gives one; the last node's error
    when none does."""
    await client.initialize()  # the nodes known (nothing to do once done)
    nodes = client.get_nodes()
    random.shuffle(nodes)
    last = _answered.get(client)
    nodes.sort(key=lambda node: node.name != last)  # it first, the rest in random order
    failure: BaseException = ConnectionError("the cluster lists no node")
    for node in nodes:
        try:
            answer = await call(node)
        except (RedisError, OSError) as exc:
            failure = exc
            if node.name == last:
                _answered.pop(client, None)  # not first next time
            continue
        _answered[client] = node.name
        return answer
    raise failure


async def publish(client: Redis | RedisCluster, channel: str, message: str) -> None:
    if not isinstance(client, RedisCluster):
        await client.publish(channel, message)
        return
    await on_any_node(client, lambda node: client.publish(channel, message, target_nodes=node))


async def subscribe(client: Redis | RedisCluster, channel: str) -> PubSub:
    """A subscription to ``channel``: a subscriber whose node died subscribes again on
    another node at once."""
    if not isinstance(client, RedisCluster):
        return await _subscribed(client.pubsub(ignore_subscribe_messages=True), channel)
    return await on_any_node(
        client,
        lambda node: _subscribed(client.pubsub(node, ignore_subscribe_messages=True), channel),
    )


async def _subscribed(pubsub: PubSub, channel: str) -> PubSub:
    try:
        await pubsub.subscribe(channel)
    except BaseException:
        await pubsub.aclose()
        raise
    return pubsub
