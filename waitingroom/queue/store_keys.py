"""What every part of the queue's store (:class:`waitingroom.queue.store.QueueStore`)
shares: the Redis client and the settings, an event's key names, and replies read as
text."""

from __future__ import annotations

from typing import Any

from ticketing.config import Settings
from ticketing.redis_connect import RedisClient


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class QueueKeys:
    def __init__(self, redis: RedisClient, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.prefix = settings.redis_prefix

    def key(self, event_id: int, name: str) -> str:
        # The hash tag {<event_id>} puts all of an event's keys in one cluster slot.
        return f"{self.prefix}q:{{{event_id}}}:{name}"

    def keys(self, event_id: int, *names: str) -> list[str]:
        return [self.key(event_id, name) for name in names]
