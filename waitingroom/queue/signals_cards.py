"""The cards signal: which accounts paid with one card in an event (``queue_signal_cards``,
migration 0009), as the booking worker recorded it at confirm (booking_worker/confirm.py), read
by the operators' list and, while an event's rule is on, by its joins (each process keeps
the event's card clusters a few seconds: a join must not wait on PostgreSQL each time).
"""

from __future__ import annotations

import logging
import time

import asyncpg

from ticketing.dependencies import POSTGRES_ERRORS

log = logging.getLogger(__name__)

# How long a process uses what it read of an event's card clusters.
CARDS_CACHE_SECONDS = 5.0

_CLUSTERS = """
SELECT fingerprint, array_agg(user_id ORDER BY first_at, user_id) AS users
FROM queue_signal_cards WHERE event_id = $1
GROUP BY fingerprint HAVING count(*) > 1
ORDER BY count(*) DESC, fingerprint
LIMIT $2
"""


class CardClusters:
    """An event's cards paid with by more than one account: card -> accounts."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._cached: dict[int, tuple[float, dict[str, str]]] = {}

    async def read(self, event_id: int, most: int = 1000) -> dict[str, list[str]]:
        rows = await self.pool.fetch(_CLUSTERS, event_id, most, timeout=2)
        return {row["fingerprint"]: list(row["users"]) for row in rows}

    async def flagged(self, event_id: int) -> dict[str, str]:
        """Account -> ``card:<fingerprint>`` of every account in a card cluster, as read
        within the last few seconds; what was read before if PostgreSQL fails now (none
        at first): a join goes on without it."""
        now = time.monotonic()
        cached = self._cached.get(event_id)
        if cached is not None and now - cached[0] < CARDS_CACHE_SECONDS:
            return cached[1]
        try:
            clusters = await self.read(event_id)
        except POSTGRES_ERRORS as exc:
            log.warning("card clusters unavailable: event_id=%s %s", event_id, exc)
            users = cached[1] if cached is not None else {}
        else:
            users = {u: f"card:{fp}" for fp, members in clusters.items() for u in members}
        self._cached[event_id] = (now, users)
        return users
