"""Once a second, in whichever waitingroom process takes that second's lease: count what
is left to sell, tell waiting fans at once when an event sells out, and steer the rate of
queues in auto mode from the booking path's health and the remaining inventory."""

from __future__ import annotations

import json
import logging
import time

from ticketing.config import Settings
from ticketing.domain.queue import BookingHealth, auto_start_rate, is_sold_out, next_auto_rate
from waitingroom.booking_health import BrokerBacklog, LatencyReports
from waitingroom.queue_events import QueueEvents
from waitingroom.queue_store import QueueStore

log = logging.getLogger(__name__)

LEASE_MS = 900  # under a second: the next second's count may run in another process


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

    async def run_once(self) -> bool:
        """Count and steer if this process has the lease this second; True if it did."""
        if not await self.store.redis.set(self.lease_key, self.process, nx=True, px=LEASE_MS):
            return False
        health: BookingHealth | None = None
        for event in await self.events.count():
            event_id, inventory = event.event_id, event.inventory
            assert inventory is not None
            figures = await self.store.figures(event_id)
            sold_out = is_sold_out(inventory)
            fields: dict[str, str | int | float] = {"available": inventory.available}
            if sold_out != figures.sold_out:
                fields["sold_out"] = 1 if sold_out else 0
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
            await self.store.set_state(event_id, **fields)
            if "sold_out" in fields:
                log.info("event_id=%s sold_out=%s", event_id, sold_out)
                await self.store.publish(event_id, "sold_out" if sold_out else "on_sale")
        return True

    async def measure_health(self) -> BookingHealth:
        health = BookingHealth(await self.backlog.measure(), await self.latency.merged())
        record = {
            "backlog": health.backlog,
            "reserve_latency_ms": health.reserve_latency_ms,
            "at": time.time(),
        }
        await self.store.redis.set(self.health_key, json.dumps(record), ex=10)
        return health

    async def last_health(self) -> dict | None:
        raw = await self.store.redis.get(self.health_key)
        return None if raw is None else json.loads(raw)
