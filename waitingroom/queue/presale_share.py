"""A registered presale's share at the admitter: while it runs, TICK admits only as many
fans as the seats left in the share serve, and nobody once every seat of it is held or
sold (waitingroom/queue/scripts_admission.py): a fan is not let in to pick seats the
booking worker would refuse them ``presale_sold_out``.

TICK reads the presale in the event's ``state``: ``presale_until`` (the general sale's
start, Unix ms) and ``presale_reserve`` (the event's seats less the presale's share: the
seats kept for the general sale). Every admitting process writes them from the record once
a second, in a task of its own, so the ticks never wait on PostgreSQL (down, the admitters
go on with what Redis has); a queue state Redis lost has them back within that second.

The same read puts back each queue's presale key (MARKER) when it has expired or Redis
lost it (SET NX: never over a value an operator's change wrote), so that the gateway, which
hands an event's joins to the waitingroom while the key is missing, answers them itself
from an event's first join on, and again within a second of the key's expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable

import asyncpg

from ticketing.dependencies import POSTGRES_ERRORS, REDIS_ERRORS
from waitingroom.queue.store import QueueStore

log = logging.getLogger(__name__)

# The presale key beside each queue: the general sale's start (Unix ms), 0 for none, read
# by waitingroom/queue/presale_gate.py and the gateway's join (deploy/lua/queue_join.lua).
MARKER = "presale"
# Rewritten from the record when it expires (or Redis lost it): a presale changed in
# PostgreSQL by hand, or whose change reached PostgreSQL but not Redis, is in force within
# this long.
MARKER_TTL_SECONDS = 60
REFRESH_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 5.0
_DOWN: tuple[type[BaseException], ...] = (*POSTGRES_ERRORS, *REDIS_ERRORS, TimeoutError)
# Presales under way or still to come, and what the booking worker counts against the
# share (booking_worker/reserve.py, _presale_share): every seat of the event not available.
_SHARES = """
SELECT p.event_id, p.general_sale_at, p.seats,
       (SELECT count(*) FROM tickets t WHERE t.event_id = p.event_id) AS total
FROM presales p WHERE p.event_id = ANY($1::bigint[]) AND p.general_sale_at > now()
"""


class PresaleShares:
    def __init__(self, store: QueueStore, pool: asyncpg.Pool) -> None:
        self.store = store
        self.pool = pool
        self._written: dict[int, tuple[int, int]] = {}  # event -> (until ms, reserve)
        self._task: asyncio.Task[None] | None = None
        self._started = -math.inf
        self._warned_at = -math.inf

    def sync(self, event_ids: Iterable[int]) -> None:
        """Refresh the queues' presale fields in the background when a second has passed
        since the last refresh began and none is under way (never waits)."""
        now = time.monotonic()
        if (self._task is not None and not self._task.done()) or (
            now - self._started < REFRESH_SECONDS
        ):
            return
        self._started = now
        self._task = asyncio.create_task(self._refresh(list(event_ids)))

    async def _refresh(self, event_ids: list[int]) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                await self.refresh(event_ids)
        except _DOWN as exc:
            now = time.monotonic()
            if now - self._warned_at > 60:  # every second: once a minute at most
                self._warned_at = now
                log.warning("presale shares not refreshed: %r", exc)
        except Exception:
            log.exception("presale shares not refreshed")

    async def refresh(self, event_ids: list[int]) -> None:
        """Write each queue's presale fields from the record now: those of a presale
        under way, and an end of 0 where a presale this process wrote is gone."""
        if not event_ids:
            return
        rows = await self.pool.fetch(_SHARES, event_ids)
        shares = {
            row["event_id"]: (
                int(row["general_sale_at"].timestamp() * 1000),
                max(0, row["total"] - row["seats"]),
            )
            for row in rows
        }
        gone = {event_id: (0, 0) for event_id in self._written if event_id not in shares}
        store = self.store
        await asyncio.gather(
            *(
                store.redis.hset(
                    store.key(event_id, "state"),
                    mapping={"presale_until": until, "presale_reserve": reserve},
                )
                for event_id, (until, reserve) in {**shares, **gone}.items()
            ),
            *(
                store.redis.set(
                    store.key(event_id, MARKER),
                    shares.get(event_id, (0, 0))[0],  # 0: none, or its general sale began
                    ex=MARKER_TTL_SECONDS,
                    nx=True,
                )
                for event_id in event_ids
            ),
        )
        self._written = shares

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
