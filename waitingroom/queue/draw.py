"""The fair start in Redis and on record in PostgreSQL, for the admitter (and the routes
that make sure a commitment exists before on-sale).

- Before on-sale: the commitment Redis holds is recorded (a new epoch if Redis lost the
  seed of the one on record, which can then never be revealed).
- At on-sale, under the event's draw lock: with no draw on record, the pre-queue is drawn
  in Redis and recorded in the same transaction (a draw Redis made but the record missed,
  because PostgreSQL failed in between, is recorded from Redis on the next try). With a
  draw on record (Redis lost the queue after it), nothing is drawn again: the fans back in
  the pre-queue take the places the recorded order gives them, and the record stands.

The draw waits for PostgreSQL: no order is put in force that could not be recorded.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ticketing.dependencies import POSTGRES_ERRORS
from ticketing.domain.queue import member_key, member_ref
from waitingroom.queue import scripts
from waitingroom.queue.draw_record import DrawBusy, DrawRecord, FairnessRecord
from waitingroom.queue.events import QueueEvent
from waitingroom.queue.store import QueueStore

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.fair_start")

_ATTEMPTS = 5
# After PostgreSQL failed for an event, its record is not tried again for this long: a join
# that records the commitment must not wait on a database that is down, again and again.
RETRY_SECONDS = 1.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(raw: str) -> datetime:
    return datetime.fromtimestamp(int(raw) / 1000, UTC)


class FairStart:
    def __init__(self, store: QueueStore, record: FairnessRecord) -> None:
        self.store = store
        self.record = record
        self._redraw = store.redis.register_script(scripts.REDRAW)
        self._on_record: dict[int, str] = {}  # event -> commitment known to be recorded
        self._busy: set[int] = set()  # events this process is recording right now
        self._retry_at: dict[int, float] = {}
        self._warned_at = -math.inf

    async def commit(self, event_id: int) -> bool:
        """Commit in Redis (the first commitment stands) and record it; False while it is
        not recorded (PostgreSQL down, another process at it): call again."""
        in_force = await self.store.ensure_commitment(event_id)
        if self._on_record.get(event_id) == in_force:
            return True
        fair = await self._fair(event_id)
        if fair.get("commitment") != in_force:
            return False  # replaced meanwhile (Redis lost it again): next time
        committed_at = _ms(fair["committed_at"])

        async def record(conn: asyncpg.Connection) -> str:
            return await self.record.commit(conn, event_id, in_force, committed_at)

        outcome = await self._locked(event_id, "commitment not recorded yet", record)
        if outcome is None:
            return False
        if outcome == "superseded":
            log.warning(
                "queue seed lost before the draw, new commitment recorded: event_id=%s",
                event_id,
            )
        # Said in Redis too, for the gateway's join (deploy/lua/queue_join.lua), which puts
        # fans in the pre-queue itself only once the commitment in force is on record.
        await self.store.mark_recorded(event_id, in_force)
        if len(self._on_record) > 10_000:
            self._on_record.clear()
        self._on_record[event_id] = in_force
        return True

    async def draw(self, event: QueueEvent) -> bool:
        """Draw the pre-queue at on-sale, or put the recorded draw back in force; True once
        the draw is in force in Redis and on record."""
        event_id = event.event_id

        async def draw_or_restore(conn: asyncpg.Connection) -> str:
            record = await self.record.get(event_id, conn)
            if record is not None and record.drawn:
                return await self._restore(event, record, conn)
            outcome = await self.store.draw(event_id, event.on_sale_ms)
            if outcome in ("ok", "done"):
                await self._save(event_id, conn)
            return outcome

        outcome = await self._locked(event_id, "pre-queue not drawn yet", draw_or_restore)
        if outcome == "ok":
            log.info("pre-queue drawn: event_id=%s", event_id)
        return outcome in ("ok", "done")

    async def _locked(
        self, event_id: int, what: str, step: Callable[[asyncpg.Connection], Awaitable[str]]
    ) -> str | None:
        """``step`` under the event's draw lock; None when it is not the moment (this or
        another process is at it, or PostgreSQL failed lately) or PostgreSQL fails now."""
        if event_id in self._busy or time.monotonic() < self._retry_at.get(event_id, 0):
            return None
        self._busy.add(event_id)
        try:
            async with self.record.locked(event_id) as conn:
                return await step(conn)
        except DrawBusy:
            return None
        except POSTGRES_ERRORS as exc:
            now = time.monotonic()
            if len(self._retry_at) > 10_000:
                self._retry_at.clear()
            self._retry_at[event_id] = now + RETRY_SECONDS
            if now - self._warned_at > 60:  # once a minute at most: retried every second
                self._warned_at = now
                log.warning("%s, postgres unavailable: event_id=%s %r", what, event_id, exc)
            return None
        finally:
            self._busy.discard(event_id)

    async def _save(self, event_id: int, conn: asyncpg.Connection) -> None:
        fair, order = await self.store.fairness(event_id)
        if not fair.get("seed"):
            # Redis says drawn but lost the draw itself: nothing left to record.
            log.error("queue drawn but its record is gone from Redis: event_id=%s", event_id)
            return
        fields = {
            "commitment": fair["commitment"],
            "committed_at": _ms(fair["committed_at"]),
            "seed": fair["seed"],
            "revealed_at": _ms(fair["revealed_at"]),
        }
        saved = await self.record.save_draw(conn, event_id, fields, order)
        if saved.seed != fair["seed"]:
            log.error("queue drawn again unlike its record: event_id=%s", event_id)

    async def _restore(
        self, event: QueueEvent, record: DrawRecord, conn: asyncpg.Connection
    ) -> str:
        event_id = event.event_id
        total = record.total
        if total is None:
            raise ValueError(f"event {event_id}: only a drawn record is restored")
        pre = self.store.key(event_id, "pre")
        key = member_key(self.store.settings.queue_ticket_secret, event_id)
        for _ in range(_ATTEMPTS):
            users = [_text(u) for u in await self.store.redis.zrange(pre, 0, -1)]
            refs = [member_ref(key, event_id, user) for user in users]
            drawn_at = await self.record.positions(event_id, refs, conn)
            args: list[Any] = [event.on_sale_ms]
            for user, ref in zip(users, refs, strict=True):
                position = drawn_at.get(ref)
                args += [user, 0 if position is None else position - total - 1]
            outcome = _text(
                await self._redraw(
                    keys=self.store.keys(event_id, "waiting", "pre", "seen", "state"), args=args
                )
            )
            if outcome == "ok":
                log.warning(
                    "queue state lost after the draw, the recorded order put back: "
                    "event_id=%s fans=%d",
                    event_id,
                    len(users),
                )
            if outcome != "changed":
                return outcome
        return "changed"

    async def drawn_place(self, event_id: int, user_id: str) -> int | None:
        """The place (-N..-1) the recorded draw gave this fan, or None (no draw on record,
        or not in it). For a pre-queue ticket that comes back after the restore ran."""
        record = await self.record.get(event_id)
        if record is None or not record.drawn or record.total is None:
            return None
        ref = member_ref(
            member_key(self.store.settings.queue_ticket_secret, event_id), event_id, user_id
        )
        position = (await self.record.positions(event_id, [ref])).get(ref)
        return None if position is None else position - record.total - 1

    async def _fair(self, event_id: int) -> dict[str, str]:
        raw = await self.store.redis.hgetall(self.store.key(event_id, "fair"))
        return {_text(k): _text(v) for k, v in raw.items()}
