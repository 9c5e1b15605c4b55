"""The waiting room's parts in one process: what its routes, its loops (started by
:func:`waitingroom.queue.loops.queue_ctx`) and the booking front door's port share."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiohttp import web

from ticketing.config import Settings
from ticketing.dependencies import POSTGRES_ERRORS, REDIS_ERRORS
from waitingroom.queue.admitter import Admitter
from waitingroom.queue.controller import QueueController
from waitingroom.queue.events import QueueEvents
from waitingroom.queue.hub import Hub
from waitingroom.queue.status import FiguresCache
from waitingroom.queue.store import QueueStore

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.queue_runtime")


@dataclass
class QueueRuntime:
    settings: Settings
    store: QueueStore
    events: QueueEvents
    figures: FiguresCache
    hub: Hub
    admitter: Admitter
    controller: QueueController
    # The event of each hold this process answered a 201 reserve for, so the confirm that
    # follows (usually through the same front door) need not ask PostgreSQL: that lookup
    # was a fifth of a front door's work in an on-sale. Bounded; a miss asks PostgreSQL.
    hold_events: dict[str, int] = field(default_factory=dict)
    # Booked fans' session ends Redis refused, being tried again (session_end.py).
    deferred_ends: set[asyncio.Task[None]] = field(default_factory=set)

    def remember_hold(self, hold_id: str, event_id: int) -> None:
        if len(self.hold_events) >= HOLD_EVENTS_KEPT:
            self.hold_events.clear()
        self.hold_events[hold_id] = event_id

    async def event_of_hold(self, hold_id: str, *, done: bool = False) -> int | None:
        """The hold's event (None: no such hold); ``done``: it will not be asked again."""
        event_id = self.hold_events.pop(hold_id, None) if done else self.hold_events.get(hold_id)
        if event_id is None:
            event_id = await self.events.pool.fetchval(
                "SELECT event_id FROM holds WHERE id = $1::uuid", hold_id
            )
        return event_id


HOLD_EVENTS_KEPT = 100_000

QUEUE_KEY = web.AppKey("queue_runtime", QueueRuntime)
# "all" or "booking" (a booking front door: the queue's state, none of its loops).
ROLE_KEY = web.AppKey("waitingroom_role", str)


async def recount_if_all_held(
    runtime: QueueRuntime, hold_id: str | None = None, event_id: int | None = None
) -> None:
    """After a confirm or a release (of ``hold_id``, or in ``event_id``): when every seat
    left in its queued event was held (or it was sold out), that may just have changed
    (nothing left at all, or seats back): count the event again at once rather than at
    the next second. Best effort: the once-a-second count catches it anyway."""
    try:
        if event_id is None:
            event_id = await runtime.event_of_hold(str(hold_id))
        if event_id is None or await runtime.events.get(event_id) is None:
            return
        if await runtime.store.nothing_free(event_id):
            runtime.controller.recount(event_id)
    except (*REDIS_ERRORS, *POSTGRES_ERRORS) as exc:
        log.warning("queue recount not asked: event_id=%s %s", event_id, exc)
