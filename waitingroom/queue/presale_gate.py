"""The presale at the queue's join: from on-sale until the presale's general_sale_at an
event's queue (its pre-queue too) admits only fans with their presale code.

Whether an event is in its presale is kept in Redis beside its queue (``presale``: the
general sale's start in Unix ms, or 0 for no presale), written from the record when it is
missing and at once when operators change the presale; each process keeps what it read
for a second. The gateway's join (deploy/lua/queue_join.lua) reads the same key: while it
says presale, or says nothing, it hands the join here.

A code is checked against the record (PostgreSQL) before anything else of the join, so a
refused join changes nothing (not even the door's challenge is used); it is redeemed once
the fan has their place. A code is bound to the fan it was issued to: another account's
join with it is refused, the same fan's joins again (a reload, a lost connection) are the
same join.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from ticketing.api import Problems
from ticketing.dependencies import POSTGRES_ERRORS
from ticketing.problems import Problem, backend_unavailable
from ticketing.validation import rfc3339
from waitingroom.queue.challenge_routes import JOIN_FORBIDDEN
from waitingroom.queue.presale_record import (
    CODE_LENGTH,
    Presale,
    PresaleRecord,
    normalize_code,
)
from waitingroom.queue.presale_shapes import JoinProblem, QueueJoinBody
from waitingroom.queue.presale_share import MARKER, MARKER_TTL_SECONDS
from waitingroom.queue.route_steps import queue_reachable
from waitingroom.queue.runtime import QueueRuntime

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0

# A join's 403s: the door's (JOIN_FORBIDDEN) and the presale's, in one reply.
JOIN_REFUSED = Problems(
    403,
    f"{JOIN_FORBIDDEN.description}; from on-sale until the event's presale ends the join "
    "carried no presale code (presale_code_required) or one that is not this fan's code of "
    "this presale (presale_code_invalid): these two say when the general sale opens",
    codes=(*JOIN_FORBIDDEN.codes, "presale_code_required", "presale_code_invalid"),
    extra=JoinProblem,
)


class PresaleGate:
    def __init__(self, runtime: QueueRuntime) -> None:
        self.runtime = runtime
        self.record = PresaleRecord(runtime.events.pool, runtime.settings.queue_ticket_secret)
        self._until: dict[int, tuple[float, int]] = {}
        self._warned_at = -math.inf

    async def until_ms(self, event_id: int) -> int:
        """When the event's presale ends (Unix ms), or 0: no presale. Redis failing is the
        caller's 503; PostgreSQL failing, when Redis has no answer, is a 503 here."""
        now = time.monotonic()
        cached = self._until.get(event_id)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        store = self.runtime.store
        raw = await store.redis.get(store.key(event_id, MARKER))
        if raw is None:
            try:
                presale = await self.record.get(event_id)
            except POSTGRES_ERRORS as exc:
                # PostgreSQL down as the key expired: what this process last knew stands
                # (a join of an event without a presale does not wait on the record);
                # never known, nothing can tell, and the join is a 503.
                until = self._until[event_id][1] if event_id in self._until else None
                if until is None:
                    raise backend_unavailable(
                        "The presale's record is not reachable; retry shortly."
                    ) from exc
                if now - self._warned_at > 60:  # asked every second: once a minute at most
                    self._warned_at = now
                    log.warning("presale record unavailable, last known kept: %r", exc)
                self._until[event_id] = (now, until)
                return until
            until = 0 if presale is None else presale.general_sale_ms
            await store.redis.set(
                store.key(event_id, MARKER), until, ex=MARKER_TTL_SECONDS, nx=True
            )
        else:
            until = int(raw)
        if len(self._until) > 10_000:
            self._until.clear()
        self._until[event_id] = (now, until)
        return until

    async def forget(self, event_id: int) -> None:
        """Before a change: the key goes, so the record is read again should the change
        reach PostgreSQL and Redis then fail (no stale "no presale" stays)."""
        store = self.runtime.store
        await store.redis.delete(store.key(event_id, MARKER))
        self._until.pop(event_id, None)

    async def publish(self, event_id: int, presale: Presale | None) -> None:
        """In force at once here, in Redis for every process within a second."""
        until = 0 if presale is None else presale.general_sale_ms
        store = self.runtime.store
        await store.redis.set(store.key(event_id, MARKER), until, ex=MARKER_TTL_SECONDS)
        self._until.pop(event_id, None)

    async def check(self, event_id: int, user_id: str, body: QueueJoinBody | None) -> bool:
        """Let a join through the presale: True when it is a presale join whose code is
        to be redeemed once the fan is placed (:meth:`joined`); False when no presale is
        in force. Raises ``403 presale_code_required`` / ``presale_code_invalid``, changing
        nothing."""
        code = None if body is None else body.presale_code
        with queue_reachable():
            until = await self.until_ms(event_id)
        if not until or time.time() * 1000 >= until:
            return False
        general_sale_at = rfc3339(datetime.fromtimestamp(until / 1000, UTC))
        extra: dict[str, Any] = {
            "general_sale_at": general_sale_at,
            "presale": f"/queue/{event_id}/presale",
        }
        if code is None:
            raise Problem(
                403,
                "presale_code_required",
                "Until the general sale opens this queue is a presale for registered fans "
                f"who were drawn a code; send yours as presale_code. General sale: "
                f"{general_sale_at}.",
                **extra,
            )
        normalized = normalize_code(code)
        holder = None
        if len(normalized) == CODE_LENGTH:
            try:
                holder = await self.record.code_holder(event_id, normalized)
            except POSTGRES_ERRORS as exc:
                raise backend_unavailable(
                    "The presale's codes are not reachable; retry shortly."
                ) from exc
        if holder != user_id:
            log.info("presale code refused: event_id=%s user=%s", event_id, user_id)
            raise Problem(
                403,
                "presale_code_invalid",
                "That is not a presale code issued to you for this event (a code is bound "
                "to the account it was drawn for).",
                **extra,
            )
        return True

    async def joined(self, presale: bool, event_id: int, user_id: str) -> None:
        """The fan has their place: a presale join's code is used (``presale``: what
        :meth:`check` said). Best effort: the join stands."""
        if not presale:
            return
        try:
            if await self.record.redeem(event_id, user_id):
                log.info("presale code redeemed: event_id=%s user=%s", event_id, user_id)
        except POSTGRES_ERRORS as exc:
            log.warning("presale code not marked redeemed: event_id=%s %s", event_id, exc)


_GATES: dict[int, tuple[QueueRuntime, PresaleGate]] = {}


def presale_gate(runtime: QueueRuntime) -> PresaleGate:
    """The process's gate of this runtime (one per application)."""
    entry = _GATES.get(id(runtime))
    if entry is None or entry[0] is not runtime:
        if len(_GATES) > 64:  # applications of a test run come and go
            _GATES.clear()
        entry = _GATES[id(runtime)] = (runtime, PresaleGate(runtime))
    return entry[1]
