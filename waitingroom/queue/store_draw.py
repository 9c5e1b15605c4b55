"""The fair start in Redis: the commitment to the pre-queue's seed, the draw at on-sale,
and what the fairness page shows of them. :mod:`waitingroom.queue.draw` puts them on
record in PostgreSQL. Scripts in :mod:`waitingroom.queue.scripts_draw`."""

from __future__ import annotations

import secrets
from typing import Any

from ticketing.config import Settings
from ticketing.domain.queue import commitment, draw_users, member_key
from ticketing.redis_connect import RedisClient
from waitingroom.queue import scripts
from waitingroom.queue.store_keys import QueueKeys, text


class DrawStore(QueueKeys):
    def __init__(self, redis: RedisClient, settings: Settings) -> None:
        super().__init__(redis, settings)
        self._commit = redis.register_script(scripts.COMMIT)
        self._draw = redis.register_script(scripts.DRAW)

    async def ensure_commitment(self, event_id: int) -> str:
        """Commit to a seed for the pre-queue draw (the first call wins; later calls return
        the commitment in force)."""
        seed = secrets.token_hex(32)
        got = await self._commit(
            keys=self.keys(event_id, "seed", "fair"), args=[seed, commitment(seed)]
        )
        return text(got)

    async def mark_recorded(self, event_id: int, commitment: str) -> None:
        """Note beside the commitment that it is on record in PostgreSQL."""
        await self.redis.hset(self.key(event_id, "fair"), "recorded", commitment)

    async def draw(self, event_id: int, on_sale_ms: int) -> str:
        """Shuffle the pre-queue ahead of everyone else, once; 'ok', 'done' or 'early'."""
        for _ in range(5):
            await self.ensure_commitment(event_id)
            seed_raw = await self.redis.get(self.key(event_id, "seed"))
            members = await self.redis.zrange(self.key(event_id, "pre"), 0, -1)
            seed = text(seed_raw)
            key = member_key(self.settings.queue_ticket_secret, event_id)
            order = draw_users(seed, key, event_id, [text(m) for m in members])
            args: list[Any] = [on_sale_ms, seed]
            for user, ref in order:
                args += [user, ref]
            outcome = text(
                await self._draw(
                    keys=self.keys(
                        event_id, "waiting", "pre", "seen", "state", "fair", "drawn", "seed"
                    ),
                    args=args,
                )
            )
            if outcome != "changed":  # a fan left the pre-queue meanwhile: read it again
                return outcome
        return "changed"

    async def fairness(self, event_id: int) -> tuple[dict[str, str], list[str]]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.key(event_id, "fair"))
        pipe.lrange(self.key(event_id, "drawn"), 0, -1)
        fair, drawn = await pipe.execute()
        return {text(k): text(v) for k, v in fair.items()}, [text(r) for r in drawn]
