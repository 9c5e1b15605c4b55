"""Which events have a queue, when they go on sale and what is left to sell.

Once a second one waitingroom process (whoever takes that second's lease in Redis) runs
one grouped count over the queue-enabled events in PostgreSQL and stores the result in
Redis; every process reads it from there. So the queue costs PostgreSQL one cheap query a
second however many processes and fans there are. An event not in that snapshot yet (just
created) is looked up by id, and the answer, found or not, is kept for a second.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ticketing.domain.queue import Inventory
from ticketing.redis_connect import RedisClient
from ticketing.validation import rfc3339

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.queue_events")

SNAPSHOT_TTL_SECONDS = 10
LOOKUP_TTL_SECONDS = 1.0
MAX_QUEUE_EVENTS = 1000

COUNT_SQL = """
SELECT e.id, e.name, e.on_sale_at,
       count(t.id) FILTER (WHERE t.status = 'available') AS available,
       count(t.id) FILTER (WHERE t.status = 'reserved') AS reserved,
       count(t.id) FILTER (WHERE t.status = 'booked') AS booked
FROM events e LEFT JOIN tickets t ON t.event_id = e.id
WHERE e.queue_enabled AND e.starts_at > now() - interval '1 day'
GROUP BY e.id
ORDER BY e.id
LIMIT $1
"""
LOOKUP_SQL = "SELECT id, name, on_sale_at FROM events WHERE id = $1 AND queue_enabled"
# One event's count, as COUNT_SQL's, when a confirm or a release may have changed the
# answer to "is anything left?" and a second is too long to wait.
COUNT_ONE_SQL = """
SELECT count(*) FILTER (WHERE status = 'available') AS available,
       count(*) FILTER (WHERE status = 'reserved') AS reserved,
       count(*) FILTER (WHERE status = 'booked') AS booked
FROM tickets WHERE event_id = $1
"""


@dataclass(frozen=True, slots=True)
class QueueEvent:
    event_id: int
    name: str
    on_sale_at: datetime
    inventory: Inventory | None  # None until the next count

    @property
    def on_sale_ms(self) -> int:
        return int(self.on_sale_at.timestamp() * 1000)

    @property
    def on_sale_text(self) -> str:
        return _rfc3339(self.on_sale_at)

    def to_json(self) -> dict[str, object]:
        return {
            "event_id": self.event_id,
            "name": self.name,
            "on_sale_at": self.on_sale_text,
            # For the gateway's join (deploy/lua/queue_join.lua), which reads this
            # snapshot and has no date parser.
            "on_sale_ms": self.on_sale_ms,
            "inventory": None if self.inventory is None else self.inventory.to_json(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> QueueEvent:
        inv = raw.get("inventory")
        return cls(
            raw["event_id"],
            raw["name"],
            datetime.fromisoformat(raw["on_sale_at"].replace("Z", "+00:00")),
            None if inv is None else Inventory(inv["available"], inv["reserved"], inv["booked"]),
        )


@functools.lru_cache(maxsize=4096)
def _rfc3339(value: datetime) -> str:
    return rfc3339(value)  # formatted once, not for every status pushed


class QueueEvents:
    def __init__(self, redis: RedisClient, prefix: str, pool: asyncpg.Pool) -> None:
        self.redis = redis
        self.pool = pool
        self.key = prefix + "queue:events"
        self._snapshot: dict[int, QueueEvent] = {}
        self._looked_up: dict[int, tuple[float, QueueEvent | None]] = {}

    def all(self) -> list[QueueEvent]:
        return list(self._snapshot.values())

    async def get(self, event_id: int) -> QueueEvent | None:
        """The queue-enabled event, or None (unknown, or no queue)."""
        event = self._snapshot.get(event_id)
        if event is not None:
            return event
        now = time.monotonic()
        cached = self._looked_up.get(event_id)
        if cached is not None and now - cached[0] < LOOKUP_TTL_SECONDS:
            return cached[1]
        row = await self.pool.fetchrow(LOOKUP_SQL, event_id)
        found = None if row is None else QueueEvent(row["id"], row["name"], row["on_sale_at"], None)
        if len(self._looked_up) > 10_000:  # ids probed at random must not grow this forever
            self._looked_up.clear()
        self._looked_up[event_id] = (now, found)
        return found

    async def refresh(self) -> None:
        """Take the latest snapshot from Redis."""
        raw = await self.redis.get(self.key)
        if raw is None:
            return  # no counter ran lately: keep what we have, look new ids up
        self._snapshot = {e["event_id"]: QueueEvent.from_json(e) for e in json.loads(raw)}

    async def count_one(self, event_id: int) -> Inventory:
        """One event's inventory now, straight from PostgreSQL."""
        row = await self.pool.fetchrow(COUNT_ONE_SQL, event_id)
        if row is None:  # an aggregate without GROUP BY: one row, whatever the event
            raise RuntimeError(f"event {event_id}: the count returned no row")
        return Inventory(row["available"], row["reserved"], row["booked"])

    async def count(self) -> list[QueueEvent]:
        """Count in PostgreSQL and publish the snapshot (the caller holds the lease)."""
        rows = await self.pool.fetch(COUNT_SQL, MAX_QUEUE_EVENTS)
        events = [
            QueueEvent(
                r["id"],
                r["name"],
                r["on_sale_at"].astimezone(UTC),
                Inventory(r["available"], r["reserved"], r["booked"]),
            )
            for r in rows
        ]
        payload = json.dumps([e.to_json() for e in events])
        await self.redis.set(self.key, payload, ex=SNAPSHOT_TTL_SECONDS)
        self._snapshot = {e.event_id: e for e in events}
        return events
