"""Once a second, in whichever waitingroom process takes that second's lease: count what
is left to sell, tell waiting fans at once when an event sells out, and steer the rate of
queues in auto mode from the booking path's health and the remaining inventory.

Between those counts a front door that sees a confirm or a release which may have changed
whether anything is left (every seat left was in a hold) asks for a recount of that event
at once (:meth:`QueueController.recount`): a sell-out is told within a second, not at the
next count. Every count notes in Redis, before it reads PostgreSQL, when it began and the
seats held through the front doors so far (scripts COUNT_BEGIN / COUNT_APPLY), so a
count begun earlier never overwrites one begun later, and holds made while it ran are
still taken off what it found available.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from ticketing.config import Settings
from ticketing.dependencies import POSTGRES_ERRORS, REDIS_ERRORS
from ticketing.domain.queue import BookingHealth, Inventory, auto_start_rate, next_auto_rate
from waitingroom.queue.booking_health import BrokerBacklog, LatencyReports
from waitingroom.queue.events import QueueEvents
from waitingroom.queue.metrics import SESSIONS_ENDED
from waitingroom.queue.store import QueueStore

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.queue_controller")

LEASE_MS = 900  # under a second: the next second's count may run in another process
# The lease let go, if this process holds it: a process that stops hands the next count to
# another at once rather than after the lease runs out (in a rolling restart, a process
# started within those 900 ms would otherwise miss its first count).
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


class QueueController:
    def __init__(
        self,
        store: QueueStore,
        events: QueueEvents,
        settings: Settings,
        backlog: BrokerBacklog,
        latency: LatencyReports,
        process: str,
    ) -> None:
        self.store = store
        self.events = events
        self.settings = settings
        self.backlog = backlog
        self.latency = latency
        self.process = process
        self.lease_key = settings.redis_prefix + "queue:controller"
        self.health_key = settings.redis_prefix + "queue:health"
        # Recounts under way per event, and whether another was asked for meanwhile.
        self._recounting: dict[int, asyncio.Task[None]] = {}
        self._again: set[int] = set()

    async def run_once(self) -> bool:
        """Count and steer if this process has the lease this second; True if it did."""
        if not await self.store.redis.set(self.lease_key, self.process, nx=True, px=LEASE_MS):
            return False
        health: BookingHealth | None = None
        began = await self.store.count_begin([event.event_id for event in self.events.all()])
        for event in await self.events.count():
            event_id, inventory = event.event_id, event.inventory
            if inventory is None:
                raise RuntimeError(f"event {event_id} was counted without its inventory")
            await self.apply(event_id, began.get(event_id), inventory)
            figures = await self.store.figures(event_id)
            fields: dict[str, str | int | float] = {}
            if figures.config.mode == "auto":
                if health is None:
                    health = await self.measure_health()
                ceiling = figures.config.admit_per_minute
                current = figures.auto_rate
                fields["auto_rate"] = round(
                    next_auto_rate(
                        auto_start_rate(ceiling) if current is None else current,
                        ceiling,
                        health,
                        inventory,
                        figures.active,
                        self.settings.queue_auto_max_backlog,
                        self.settings.queue_auto_max_latency_ms,
                    ),
                    3,
                )
            if fields:
                await self.store.set_state(event_id, **fields)
        return True

    async def apply(
        self, event_id: int, began: tuple[int, int] | None, inventory: Inventory
    ) -> None:
        """Store a count; a sell-out ends every admitted session (the fans go back to the
        front of the line) and is told to everyone at once, as is a sell-out undone."""
        applied = await self.store.count_apply(
            event_id, began, inventory.available, inventory.reserved
        )
        if applied.requeued:
            SESSIONS_ENDED.labels("sold_out").inc(applied.requeued)
        if applied.change in ("sold_out", "on_sale"):
            log.info(
                "event_id=%s %s (admitted fans back in line: %d)",
                event_id,
                applied.change,
                applied.requeued,
            )
            await self.store.publish(event_id, applied.change)

    def recount(self, event_id: int) -> None:
        """Count ``event_id`` again now, in the background: one count at a time per event
        in this process, and one more after it when asked again meanwhile (a confirm seen
        while a count was already reading may not be in it)."""
        if event_id in self._recounting:
            self._again.add(event_id)
            return
        task = asyncio.create_task(self._recount(event_id))
        self._recounting[event_id] = task

    async def _recount(self, event_id: int) -> None:
        try:
            while True:
                self._again.discard(event_id)
                began = await self.store.count_begin([event_id])
                inventory = await self.events.count_one(event_id)
                await self.apply(event_id, began[event_id], inventory)
                if event_id not in self._again:
                    return
        except (*REDIS_ERRORS, *POSTGRES_ERRORS) as exc:  # the once-a-second count goes on
            log.warning("queue recount failed: event_id=%s %s", event_id, exc)
        except Exception:
            log.exception("queue recount failed: event_id=%s", event_id)
        finally:
            self._recounting.pop(event_id, None)

    async def close(self) -> None:
        """Wait for the recounts under way; let go of the lease."""
        await asyncio.gather(*self._recounting.values(), return_exceptions=True)
        with contextlib.suppress(*REDIS_ERRORS):
            await self.store.redis.eval(_RELEASE, 1, self.lease_key, self.process)

    async def measure_health(self) -> BookingHealth:
        health = BookingHealth(await self.backlog.measure(), await self.latency.merged())
        record = {
            "backlog": health.backlog,
            "reserve_latency_ms": health.reserve_latency_ms,
            "at": time.time(),
        }
        await self.store.redis.set(self.health_key, json.dumps(record), ex=10)
        return health

    async def last_health(self) -> dict[str, Any] | None:
        raw = await self.store.redis.get(self.health_key)
        return None if raw is None else json.loads(raw)
