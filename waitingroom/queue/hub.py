"""The queue websockets of this process and what is pushed to them.

The hub is made of its sockets, by event (:mod:`~waitingroom.queue.hub_rooms`), what one
fan is told (:mod:`~waitingroom.queue.hub_tell`), a push loop per event that looks at the
fans due a look every half second (:mod:`~waitingroom.queue.hub_rounds`, where the policy
of who is due is), and the queue-wide changes told to every fan at once
(:mod:`~waitingroom.queue.hub_broadcast`). Here are the sockets coming and going, and the
notifications from every process.

Admissions, sell-outs, pauses, resumes and ended sessions arrive at once over Redis pub/sub
from whichever process caused them, and are told at once, not in a round (a resume as a
one-off ``{"type": "resumed"}`` to the fans told of the pause; a sell-out to the admitted
fans too, whose sessions it ended); a round yields to them every few dozen fans. Any
queue-wide change (those, new settings) also starts a round at once with fresh figures,
so the front hears it within a round; everyone else hears the full status that follows
(the place and wait once resumed, the place drawn at on-sale) at their turn, within 4.5 s:
a full status for 20,000 fans at once (a place each, read from Redis) would be a burst
that holds up the admissions made meanwhile (the client side included). Except where
inventory changes what every fan is told: a sell-out, its end, and every seat left coming
to be held (``all_held``) or not are followed by a status to every fan whose status
changed, in the broadcast's own task (admissions go on meanwhile), one such pass at a time
per room however often all_held comes and goes.

Sends never wait on a slow client (see :mod:`waitingroom.queue.fan`); a fan skipped as slow
is looked at again every round, until it is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from aiohttp import WSCloseCode
from redis.asyncio.client import PubSub

from ticketing.config import Settings
from ticketing.dependencies import REDIS_ERRORS
from ticketing.lifecycle import Backoff
from ticketing.redis_nodes import subscribe
from waitingroom.queue.events import QueueEvents
from waitingroom.queue.fan import SLOW_BUFFER_BYTES, SLOW_DROP_SECONDS, Fan, Sender
from waitingroom.queue.hub_broadcast import Broadcasts
from waitingroom.queue.hub_rooms import Rooms
from waitingroom.queue.hub_rounds import PushRounds, turns
from waitingroom.queue.hub_tell import Teller
from waitingroom.queue.socket_heap import SocketHeap
from waitingroom.queue.status import FiguresCache
from waitingroom.queue.store import QueueStore

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.queue_hub")
# The longest the listener waits for a message before it looks at its stop event again.
LISTEN_WAIT_SECONDS = 0.1


class Hub:
    def __init__(
        self,
        store: QueueStore,
        settings: Settings,
        figures: FiguresCache,
        events: QueueEvents,
        *,
        slow_buffer_bytes: int = SLOW_BUFFER_BYTES,
        slow_drop_seconds: float = SLOW_DROP_SECONDS,
    ) -> None:
        """``slow_*``: see :class:`waitingroom.queue.fan.Sender`."""
        self.store = store
        self.settings = settings
        self.figures = figures
        self.events = events
        self.slices, keepalive_after = turns(settings.queue_abandon_seconds)
        self.rooms = Rooms(self.slices)
        self.sender = Sender(self.remove, slow_buffer_bytes, slow_drop_seconds)
        self.teller = Teller(settings, self.sender, self.remove, keepalive_after)
        self.heap = SocketHeap()
        self.rounds = PushRounds(store, figures, self.teller, self.rooms, self.heap)
        self.broadcasts = Broadcasts(figures, self.teller, self.rounds, self.count)

    # --- sockets --------------------------------------------------------------------------

    async def add(self, fan: Fan) -> None:
        room = self.rooms.add(fan)
        figures = await self.figures.get(fan.event.event_id)
        await self.teller.update(fan, fan.placement, figures, True, time.time())
        self.rounds.start(fan.event.event_id, room)

    def remove(self, fan: Fan) -> None:
        self.rooms.remove(fan)

    def count(self) -> int:
        return self.rooms.count()

    async def close(self) -> None:
        """Close every socket (1001 going away) and stop the push loops."""
        self.rounds.closing = True
        rooms = self.rooms.all()
        loops = [task for room in rooms for task in (room.loop, room.presence) if task]
        loops += self.broadcasts.tasks
        for loop in loops:
            loop.cancel()
        closes = [
            fan.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
            for room in rooms
            for fan in room.fans()
        ]
        if closes:
            await asyncio.wait_for(asyncio.gather(*closes, return_exceptions=True), 5)
        await asyncio.gather(*loops, *self.teller.closers, return_exceptions=True)

    # --- notifications from every process -------------------------------------------------

    async def listen(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            pubsub: PubSub | None = None
            try:
                # Subscribed again after any failure: a node lost takes its subscribers'
                # connections with it (in a cluster the next subscription is on another
                # node; under Sentinel, on the primary it names now).
                pubsub = await subscribe(self.store.redis, self.store.channel)
                backoff.reset()
                while not stop.is_set():
                    # A short wait: stopping is seen within it (each test's app, and each
                    # process's shutdown, waited out half a second here before).
                    message = await pubsub.get_message(timeout=LISTEN_WAIT_SECONDS)
                    if message is not None:
                        await self._on_message(json.loads(message["data"]))
            except REDIS_ERRORS as exc:
                log.warning("queue notifications: redis unavailable: %s", exc)
                await backoff.sleep(stop)
            except Exception:
                log.exception("queue notification failed")
            finally:
                if pubsub is not None:
                    with contextlib.suppress(*REDIS_ERRORS):
                        await pubsub.aclose()

    async def _on_message(self, message: dict[str, Any]) -> None:
        event_id, kind = message["event_id"], message["type"]
        if kind in ("config", "paused", "resumed", "sold_out", "on_sale", "all_held"):
            self.figures.forget(event_id)
        room = self.rooms.get(event_id)
        if room is None or not room.by_user:
            return
        if kind in ("admitted", "ended"):
            await self._tell_each(room.by_user, kind, message)
        elif kind in ("sold_out", "paused", "resumed", "on_sale", "all_held"):
            self.broadcasts.start(room, kind)
        if kind not in ("admitted", "ended", "sold_out"):
            # The queue as a whole changed: a round now, with fresh figures (the fans due
            # it; the rest at their turn). Not for admissions, told directly above: they
            # come five times a second; nor for a sell-out, whose broadcast tells every fan
            # and ends with a status pass of its own (a round meanwhile would only compete
            # with it for the same sockets).
            room.wake.set()

    async def _tell_each(
        self, by_user: dict[str, set[Fan]], kind: str, message: dict[str, Any]
    ) -> None:
        """Admissions, or ended sessions: told to each of those fans' sockets here."""
        if kind == "admitted":
            since = message["at"] / 1000
            for user, expiry_ms in message["users"]:
                for fan in list(by_user.get(user, ())):
                    await self.teller.tell_admitted(fan, expiry_ms, since)
        else:
            for user in message["users"]:
                for fan in list(by_user.get(user, ())):
                    await self.teller.end(fan, message["reason"])
