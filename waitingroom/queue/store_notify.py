"""The queue's notifications: one Redis pub/sub channel for all events, on which whichever
process admitted fans, ended a session or changed a queue as a whole tells every process's
hub (:meth:`waitingroom.queue.hub.Hub.listen`).

On a Redis Cluster this stays plain PUBLISH, not sharded pub/sub (SPUBLISH, Redis 7.0):
every hub wants every event's notifications, a few a second per event (admissions five
times a second, ended sessions, changes), so the one channel would live on one shard
anyway, and the cluster bus carrying each message to every node costs nothing at that
rate. What plain pub/sub buys is that a subscriber may be on any node, replicas
included: a hub whose node dies subscribes again on any other at once, with no slot to
follow through a failover; and a publisher reaches every node's subscribers from whichever
node it sends to, so a publish need not wait for a failover either (ticketing.redis_nodes
picks a node that answers). Per-event sharded channels would spread the traffic over the
shards, at the price of every hub subscribing to each event it has sockets for: worth it
only at rates far above these."""

from __future__ import annotations

import json
from typing import Any

from ticketing.redis_nodes import publish
from waitingroom.queue.store_keys import QueueKeys


class NotifyStore(QueueKeys):
    @property
    def channel(self) -> str:
        return f"{self.prefix}queue:notify"

    async def publish(self, event_id: int, kind: str, **fields: Any) -> None:
        message = json.dumps({"event_id": event_id, "type": kind, **fields})
        await publish(self.redis, self.channel, message)
