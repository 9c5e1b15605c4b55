"""Ending a fan's waiting-room session: on leaving, and once the fan has booked.

A fan who booked is done: the session ends, the slot goes to the next fan, and the fan is
out of the queue for good. Ending it is a Redis write after the booking has committed, so
it must never fail the booking; but dropped, it leaves a booked fan holding an admitted
slot until the session expires, and a sell-out sends every fan still admitted back to the
front of the line (``scripts_count.py``): a fan with tickets would be admitted again if
seats came back. That happened in the cluster chaos runs: the confirm landed in the
seconds a Redis primary was being replaced. So an end Redis refuses is tried again in the
background, backing off, until Redis takes it or the session would have expired anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ticketing.dependencies import POSTGRES_ERRORS, REDIS_ERRORS
from waitingroom.queue.metrics import SESSION_ENDS_DEFERRED, SESSIONS_ENDED
from waitingroom.queue.runtime import QueueRuntime, recount_if_all_held

log = logging.getLogger("waitingroom.queue_routes")

RETRY_FIRST_SECONDS = 0.5
RETRY_MOST_SECONDS = 5.0


async def end_session(runtime: QueueRuntime, event_id: int, user_id: str, reason: str) -> bool:
    was = await runtime.store.leave(event_id, user_id)
    if not was:
        return False
    SESSIONS_ENDED.labels(reason).inc()
    log.info("queue %s: event_id=%s user=%s was=%s", reason, event_id, user_id, was)
    await runtime.store.publish(event_id, "ended", users=[user_id], reason=reason)
    return True


async def end_session_after_booking(runtime: QueueRuntime, user_id: str, hold_id: str) -> None:
    """A fan who booked is done: their session ends and the slot goes to the next fan.
    Never fails the booking: when Redis or PostgreSQL refuses, the end is tried again in
    the background (:func:`_until_it_ends`)."""
    try:
        await _end_booked(runtime, user_id, hold_id)
    except (*REDIS_ERRORS, *POSTGRES_ERRORS) as exc:
        log.warning(
            "queue session not ended after booking, tried again: hold_id=%s %s", hold_id, exc
        )
        SESSION_ENDS_DEFERRED.labels("deferred").inc()
        task = asyncio.create_task(_until_it_ends(runtime, user_id, hold_id))
        runtime.deferred_ends.add(task)
        task.add_done_callback(runtime.deferred_ends.discard)


async def _end_booked(runtime: QueueRuntime, user_id: str, hold_id: str) -> None:
    event_id = await runtime.event_of_hold(hold_id)
    if event_id is not None and await runtime.events.get(event_id) is not None:
        await end_session(runtime, event_id, user_id, "booked")
        runtime.hold_events.pop(hold_id, None)
        # The last seats left may just have been sold: told within a second.
        await recount_if_all_held(runtime, event_id=event_id)


async def _until_it_ends(runtime: QueueRuntime, user_id: str, hold_id: str) -> None:
    delay = RETRY_FIRST_SECONDS
    give_up = time.monotonic() + runtime.settings.queue_session_seconds
    while time.monotonic() + delay < give_up:
        await asyncio.sleep(delay)
        try:
            await _end_booked(runtime, user_id, hold_id)
        except (*REDIS_ERRORS, *POSTGRES_ERRORS):
            delay = min(2 * delay, RETRY_MOST_SECONDS)
            continue
        SESSION_ENDS_DEFERRED.labels("ended").inc()
        log.info("queue session ended after booking, late: hold_id=%s", hold_id)
        return
    SESSION_ENDS_DEFERRED.labels("expired").inc()
    log.warning("queue session after booking left to expire: hold_id=%s", hold_id)
