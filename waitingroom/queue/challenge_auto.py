"""The door's automatic mode: once every window, by the process that counts that second,
each event with ``challenge_auto`` on moves its level a step (up while joins or failed
solutions per second spike, down towards the operator's difficulty when calm;
:func:`ticketing.domain.challenge.next_auto_level`). The level is in the event's ``state``
hash, read by every join (``waitingroom.queue.challenge_routes.door_difficulty``) and shown
to operators as ``effective_challenge_difficulty``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from ticketing.domain.challenge import AUTO_WINDOW_SECONDS, next_auto_level
from waitingroom.queue.runtime import QueueRuntime

log = logging.getLogger(__name__)


class DoorSteering:
    def __init__(self, runtime: QueueRuntime) -> None:
        self.runtime = runtime
        self._last = 0.0

    async def run_once(self, event_ids: Iterable[int], *, now: float | None = None) -> None:
        """Step every automatic door, at most once a window (whichever process counts)."""
        now = time.monotonic() if now is None else now
        if now - self._last < AUTO_WINDOW_SECONDS:
            return
        self._last = now
        for event_id in event_ids:
            await self.step(event_id)

    async def step(self, event_id: int) -> int | None:
        """One step of this event's door; its new level (None: not in automatic mode)."""
        store, settings = self.runtime.store, self.runtime.settings
        config = (await self.runtime.figures.get(event_id)).config
        if not config.challenge_auto:
            return None
        level = await store.challenge_level(event_id)
        window = await store.door_window(event_id, AUTO_WINDOW_SECONDS)
        new = next_auto_level(
            level,
            config.challenge_difficulty,
            window,
            settings.challenge_auto_joins_per_second,
            settings.challenge_auto_failed_per_second,
            ceiling=settings.challenge_auto_max_difficulty,
        )
        if new != level:
            await store.set_challenge_level(event_id, new)
            log.info(
                "queue challenge level: event_id=%s %s -> %s joins_per_s=%.1f failed_per_s=%.1f",
                event_id,
                level,
                new,
                window.joins_per_second,
                window.failed_per_second,
            )
        return new
