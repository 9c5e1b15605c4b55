"""What the door's challenges keep in Redis, under the event's hash tag like every queue
key (one slot of a cluster): the challenges used (each once), the joins and failed
solutions of each second (the automatic mode's window), and the automatic mode's level
(the ``state`` hash's ``challenge_level``)."""

from __future__ import annotations

import time

from ticketing.domain.challenge import DoorWindow
from waitingroom.queue.store_keys import QueueKeys, text

# Per-second counters outlive the automatic mode's window by a margin, then go by themselves.
_COUNTER_TTL_SECONDS = 30


class ChallengeStore(QueueKeys):
    async def use(self, event_id: int, signature: str, expires_at: int) -> bool:
        """Record a solved challenge as used; False if it already was. Kept until the
        challenge expires (at least a second): after that it is refused as expired."""
        ttl = max(1, expires_at - int(time.time()) + 1)
        used = await self.redis.set(
            self.key(event_id, f"challenge:used:{signature}"), "1", nx=True, ex=ttl
        )
        return bool(used)

    async def count_door(self, event_id: int, *, failed: bool) -> None:
        """Count a join that came (and, with ``failed``, a solution that failed) this
        second, for the automatic mode."""
        second = int(time.time())
        names = [f"challenge:joins:{second}"]
        if failed:
            names.append(f"challenge:failed:{second}")
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            key = self.key(event_id, name)
            pipe.incr(key)
            pipe.expire(key, _COUNTER_TTL_SECONDS)
        await pipe.execute()

    async def door_window(self, event_id: int, seconds: int) -> DoorWindow:
        """The joins and failed solutions of the last ``seconds`` seconds (this one too)."""
        now = int(time.time())
        span = range(now - seconds + 1, now + 1)
        joins = self.keys(event_id, *(f"challenge:joins:{s}" for s in span))
        failed = self.keys(event_id, *(f"challenge:failed:{s}" for s in span))
        values = await self.redis.mget(joins + failed)
        counts = [int(text(v)) if v is not None else 0 for v in values]
        return DoorWindow(seconds, sum(counts[:seconds]), sum(counts[seconds:]))

    async def challenge_level(self, event_id: int) -> int:
        level = await self.redis.hget(self.key(event_id, "state"), "challenge_level")
        return 0 if level is None else int(text(level))

    async def set_challenge_level(self, event_id: int, level: int) -> None:
        await self.redis.hset(self.key(event_id, "state"), "challenge_level", level)
