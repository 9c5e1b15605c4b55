"""The admitter: runs in every waitingroom process, five times a second, for every queue.

Each tick is one Lua script per event (:data:`waitingroom.queue.scripts.TICK`) that ends
expired sessions and those of admitted fans who held no seats within the claim window,
drops fans who stopped listening, and admits from the front of the line as the shared
token bucket, ``max_active`` and the seats left (see TICK) allow. Because the bucket, the
counts and the line are all read and changed inside that one atomic script, any number of
processes can tick at once: together they admit at the set rate, and no fan is admitted
twice. A queue whose operators' settings Redis lost (a restart without its data) admits
nobody until they are written back from PostgreSQL, within about a second (TICK checks,
see :mod:`waitingroom.queue.scripts_admission`): never under the defaults meanwhile.
The admitter also commits to the pre-queue seed before on-sale and draws at on-sale, each
on record in PostgreSQL (:mod:`waitingroom.queue.draw`), and keeps TICK's copy of each
event's registered presale fresh, so a presale admits for its share of the seats only
(:mod:`waitingroom.queue.presale_share`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from ticketing.dependencies import REDIS_ERRORS
from waitingroom.queue.draw import FairStart
from waitingroom.queue.events import QueueEvent, QueueEvents
from waitingroom.queue.metrics import ACTUAL_WAIT, ADMISSIONS, SESSIONS_ENDED
from waitingroom.queue.presale_share import PresaleShares
from waitingroom.queue.store import QueueStore, TickResult

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.admitter")

TICK_SECONDS = 0.2


class Admitter:
    def __init__(self, store: QueueStore, events: QueueEvents, fair_start: FairStart) -> None:
        self.store = store
        self.events = events
        self.fair_start = fair_start
        self._drawn: set[int] = set()
        self._committed: set[int] = set()
        # Draws under way, each a task of its own: drawing and recording a big pre-queue
        # takes seconds (3.1 s for 200,000 fans), and the other events' ticks must not
        # wait for it. The event drawn admits nobody meanwhile (TICK needs it drawn).
        self._drawing: dict[int, asyncio.Task[None]] = {}
        self.presales = PresaleShares(store, events.pool)

    async def tick(self) -> None:
        now_ms = time.time() * 1000
        self.presales.sync(event.event_id for event in self.events.all())
        for event in self.events.all():
            event_id = event.event_id
            if event_id not in self._drawn:
                if now_ms >= event.on_sale_ms:
                    if event_id not in self._drawing:
                        self._drawing[event_id] = asyncio.create_task(self._draw(event))
                elif await self.fair_start.commit(event_id):
                    # every tick, not once: a seed Redis lost is replaced (and recorded) at
                    # once, before on-sale, even with fans back in the pre-queue
                    self._committed.add(event_id)
            result = await self.store.tick(event_id)
            await self._announce(event, result)

    async def commit(self, event_id: int) -> None:
        """Publish the seed's commitment before on-sale (once recorded, per process and event)."""
        if event_id not in self._committed and await self.fair_start.commit(event_id):
            self._committed.add(event_id)

    async def _draw(self, event: QueueEvent) -> None:
        try:
            if await self.fair_start.draw(event):
                self._drawn.add(event.event_id)
        except REDIS_ERRORS as exc:  # PostgreSQL's are fair_start's; the next tick retries
            log.warning("queue draw: redis unavailable: event_id=%s %s", event.event_id, exc)
        except Exception:
            log.exception("queue draw failed: event_id=%s", event.event_id)
        finally:
            self._drawing.pop(event.event_id, None)

    async def close(self) -> None:
        """Wait for the draws under way (each ends in its transaction, or rolls back)."""
        await asyncio.gather(*self._drawing.values(), return_exceptions=True)
        await self.presales.close()

    def forget(self, event_id: int) -> None:
        """The queue is not drawn in Redis (yet, or any more: its state was lost): draw again
        from on-sale (a draw on record is put back, not redone)."""
        self._drawn.discard(event_id)

    async def _announce(self, event: QueueEvent, result: TickResult) -> None:
        event_id = event.event_id
        if result.admitted:
            ADMISSIONS.labels(str(event_id)).inc(len(result.admitted))
            now = result.now_ms / 1000
            for _, place, _ in result.admitted:
                # FIFO places are the join time in microseconds; drawn ones are negative
                # and waited from on-sale.
                since = place / 1e6 if place > 0 else event.on_sale_ms / 1000
                ACTUAL_WAIT.observe(max(0.0, now - since))
            log.info("admitted: event_id=%s fans=%d", event_id, len(result.admitted))
            await self.store.publish(
                event_id,
                "admitted",
                users=[[user, expiry] for user, _, expiry in result.admitted],
                at=result.now_ms,
            )
        if result.expired:
            SESSIONS_ENDED.labels("expired").inc(len(result.expired))
            await self.store.publish(event_id, "ended", users=result.expired, reason="expired")
        if result.unclaimed:
            SESSIONS_ENDED.labels("unclaimed").inc(len(result.unclaimed))
            log.info("unclaimed: event_id=%s fans=%d", event_id, len(result.unclaimed))
            await self.store.publish(event_id, "ended", users=result.unclaimed, reason="unclaimed")
        if result.all_held is not None:
            # Every seat left is in a hold, or every seat of a presale's share is held or
            # sold (or some came free again): every fan's status changes, and is pushed
            # at once.
            await self.store.publish(event_id, "all_held", held=result.all_held)
        if result.abandoned:
            SESSIONS_ENDED.labels("abandoned").inc(result.abandoned)
            log.info("abandoned: event_id=%s fans=%d", event_id, result.abandoned)
