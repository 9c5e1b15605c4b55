"""The queue's notifications: one Redis pub/sub channel for all events, on which whichever
process admitted fans, ended a session or changed a queue as a whole tells every process's
hub (:meth:`waitingroom.queue.hub.Hub.listen`)."""

from __future__ import annotations

import json
from typing import Any

from waitingroom.queue.store_keys import QueueKeys


class NotifyStore(QueueKeys):
    @property
    def channel(self) -> str:
        return f"{self.prefix}queue:notify"

    async def publish(self, event_id: int, kind: str, **fields: Any) -> None:
        message = json.dumps({"event_id": event_id, "type": kind, **fields})
        await self.redis.publish(self.channel, message)
