"""The queue as the booking front door sees it: all the booking routes may ask of the
queue, in one place. ``waitingroom.booking`` imports this module and no other of the
queue's, and the queue imports nothing of booking's (``.importlinter`` keeps both so).

A reserve with an admission token asks whether the fan's session still stands (and gets
it back if Redis lost it since the token was issued), then records the seats held (or, for
too few seats, hurries the fan's turn along); a sale or a release may free or take the last
seats, so the queue counts again; a booking ends the fan's session. ``queue_ctx`` puts the
port under :data:`QUEUE_PORT_KEY`; an application without the queue has none, and booking
then goes on without it.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from ticketing.dependencies import REDIS_ERRORS
from waitingroom.queue.admission import Admission, verify_admission
from waitingroom.queue.booking_health import ReserveLatency
from waitingroom.queue.runtime import QueueRuntime, recount_if_all_held
from waitingroom.queue.session_end import end_session_after_booking

__all__ = ["QUEUE_PORT_KEY", "QUEUE_UNREACHABLE", "Admission", "QueuePort", "verify_admission"]

log = logging.getLogger("waitingroom.queue_sessions")

# What the session check and the claims raise when the queue's store is not reachable:
# the caller decides what a sale does without the queue.
QUEUE_UNREACHABLE: tuple[type[BaseException], ...] = REDIS_ERRORS

SESSION_ENDED = "Your session in the waiting room has ended; join the queue again."
TURN_PASSED = "Your turn passed: no seats were held within the claim window; join the queue again."


class QueuePort:
    def __init__(self, runtime: QueueRuntime, latency: ReserveLatency) -> None:
        self._runtime = runtime
        self._latency = latency

    async def reserve_refusal(
        self, event_id: int, user_id: str, keep_ms: int, admitted_in: Admission | None = None
    ) -> str | None:
        """Why an admitted fan's reserve is refused though their token is valid (their
        session ended: booked, left, no seats held within the claim window, sold out),
        or None: it stands, and a claim window still open stays open ``keep_ms`` more.

        ``admitted_in``: what the token says (``verify_admission``). A token naming the
        queue epoch it was issued in gets its session back when Redis lost the queue's state
        since (another epoch now) and that session is missing: until the token's end, with
        a fresh claim window, counted as active again (scripts KEEP_CLAIM). In the same
        epoch a missing session ended, and stays ended. Raises one of
        :data:`QUEUE_UNREACHABLE`."""
        lost = None
        if admitted_in is not None and admitted_in.epoch is not None:
            lost = (admitted_in.epoch, admitted_in.expires * 1000)
        store = self._runtime.store
        ends, claim_by, restored = await store.session_for_reserve(event_id, user_id, keep_ms, lost)
        if restored:
            log.info(
                "queue session restored after redis lost it: event_id=%s user=%s via=reserve",
                event_id,
                user_id,
            )
        now_ms = time.time() * 1000
        if ends is None or ends <= now_ms:
            return SESSION_ENDED
        if claim_by is not None and claim_by <= now_ms:
            return TURN_PASSED
        return None

    async def claim(self, event_id: int, user_id: str, seats: int) -> None:
        """The admitted fan holds ``seats`` more: admission counts them as taken at once.
        Raises one of :data:`QUEUE_UNREACHABLE`."""
        await self._runtime.store.claim(event_id, user_id, seats)

    async def hurry_claim(self, event_id: int, user_id: str, grace_ms: int) -> None:
        """Too few seats for the fan: their claim window closes within ``grace_ms``.
        Raises one of :data:`QUEUE_UNREACHABLE`."""
        await self._runtime.store.hurry_claim(event_id, user_id, grace_ms)

    def remember_hold(self, hold_id: str, event_id: int) -> None:
        """The hold a reserve made, so what follows it (a confirm, a release) finds its
        event without asking PostgreSQL."""
        self._runtime.remember_hold(hold_id, event_id)

    async def recount_if_all_held(
        self, hold_id: str | None = None, event_id: int | None = None
    ) -> None:
        """Seats came back or were sold: count the event again now if that may matter
        (see :func:`waitingroom.queue.runtime.recount_if_all_held`). Best effort."""
        await recount_if_all_held(self._runtime, hold_id, event_id)

    async def end_session_after_booking(self, user_id: str, hold_id: str) -> None:
        """The fan booked: their session ends and the slot goes to the next fan. Best
        effort."""
        await end_session_after_booking(self._runtime, user_id, hold_id)

    def reserve_took(self, seconds: float) -> None:
        """A reserve's answer time, which auto mode steers the admission rate by."""
        self._latency.record(seconds)


QUEUE_PORT_KEY = web.AppKey("queue_port", QueuePort)
