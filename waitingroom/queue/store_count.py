"""Counting what is left to sell of an event, in Redis: the count's beginning and its
result (PostgreSQL is read in between, by :mod:`waitingroom.queue.controller`), and
whether any seat is free as far as the last count tells. Scripts in
:mod:`waitingroom.queue.scripts_count`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ticketing.config import Settings
from ticketing.redis_connect import RedisClient
from ticketing.redis_scripts import run_each
from waitingroom.queue import scripts
from waitingroom.queue.store_keys import QueueKeys, text


@dataclass(frozen=True, slots=True)
class CountApplied:
    """What a count of an event's inventory changed: ``change`` '' (none), 'sold_out',
    'on_sale' or 'stale' (a later count was in already); ``requeued``: admitted fans whose
    sessions a sell-out ended, back at the front of the line."""

    change: str
    requeued: int


class CountStore(QueueKeys):
    def __init__(self, redis: RedisClient, settings: Settings) -> None:
        super().__init__(redis, settings)
        self._count_begin = redis.register_script(scripts.COUNT_BEGIN)
        self._count_apply = redis.register_script(scripts.COUNT_APPLY)

    async def count_begin(self, event_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Before counting in PostgreSQL: per event (Redis time in us, seats held through
        the front door so far), for :meth:`count_apply`."""
        calls = [([self.key(event_id, "state")], ()) for event_id in event_ids]
        replies = await run_each(self.redis, self._count_begin, calls)
        return {
            event_id: (int(text(began)), int(text(base)))
            for event_id, (began, base) in zip(event_ids, replies, strict=True)
        }

    async def count_apply(
        self, event_id: int, began: tuple[int, int] | None, available: int, held: int
    ) -> CountApplied:
        """Store a count made after :meth:`count_begin` (``began``; None for an event that
        had no begin: its seats held so far all count as not yet in the count)."""
        began_us, base = began if began is not None else (0, 0)
        change, moved = await self._count_apply(
            keys=self.keys(event_id, "state", "waiting", "active", "unclaimed", "seen"),
            args=[began_us, base, available, held],
        )
        return CountApplied(text(change), int(moved))

    async def nothing_free(self, event_id: int) -> bool:
        """Whether, as far as the last count and the holds since tell, no seat of the event
        is free (every one left is held, or it is sold out), or none of its presale's share
        (so a release counts again at once: the presale admits again)."""
        available, base, held_seats, sold_out, presale_held = await self.redis.hmget(
            self.key(event_id, "state"),
            "available",
            "seat_base",
            "hold_seats",
            "sold_out",
            "presale_held",
        )
        if sold_out == b"1" or presale_held == b"1":
            return True
        if available is None:
            return False
        return int(available) - max(0, int(held_seats or 0) - int(base or 0)) <= 0
