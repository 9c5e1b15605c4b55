"""Queue-wide changes told to every fan of a room at once, each in a task of its own so
that admissions go on meanwhile: a pause, its resume, a sell-out, and a status to everyone
when inventory changes what every fan is told (on sale again, every seat left held or no
longer, every seat of a presale's share held or sold or no longer: both told as
``all_held``, see waitingroom/queue/scripts_admission.py's TICK)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import orjson

from waitingroom.queue.hub_rooms import Room
from waitingroom.queue.hub_rounds import YIELD_EVERY, PushRounds
from waitingroom.queue.hub_tell import Teller, as_sold_out
from waitingroom.queue.status import FiguresCache

# The hub's name, which it logged under before it was split: its log lines read as they did.
log = logging.getLogger("waitingroom.queue_hub")

# Queue-wide changes after which every fan's status is told at once, not at their turn.
STATUS_TO_EVERYONE = ("on_sale", "all_held")


class Broadcasts:
    def __init__(
        self, figures: FiguresCache, teller: Teller, rounds: PushRounds, count: Callable[[], int]
    ) -> None:
        """``count``: this process's open sockets (for the log line of each broadcast)."""
        self.figures = figures
        self.teller = teller
        self.rounds = rounds
        self.count = count
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, room: Room, kind: str) -> None:
        """Tell a queue-wide change to every fan of the room, in a task of its own that
        starts once the one before it is done (a pause is told before its resume). The
        listener meanwhile goes on with admissions: telling 10,000 sockets takes a few
        hundred ms, and an admission made then must not wait for it. A status to everyone
        (on_sale, all_held) not started yet covers any asked for meanwhile: it reads the
        figures and places as it starts, so all_held coming and going often near the end
        of a sale costs one pass at a time, not one per change."""
        if kind in STATUS_TO_EVERYONE:
            if room.status_pending:
                return
            room.status_pending = True
        previous = room.broadcast
        if (
            kind == "sold_out"
            and previous is not None
            and not previous.done()
            and room.broadcast_kind in STATUS_TO_EVERYONE
        ):
            # A status pass over thousands of sockets (all_held comes and goes near the end
            # of every sale) takes seconds under load; the sell-out must not wait behind
            # it, and ends with a status pass of its own.
            previous.cancel()
            room.status_pending = False

        async def run() -> None:
            if previous is not None:
                # wait(), not gather(): cancelling this pass must not cancel the one before
                await asyncio.wait([previous])
            if kind in STATUS_TO_EVERYONE:
                room.status_pending = False
            started = time.monotonic()
            try:
                await self._tell_everyone(room, kind)
            except Exception:
                log.exception("queue broadcast failed: %s", kind)
            else:
                # How long the last fan of this process waited to hear it (on call: a
                # sell-out must reach everyone within a second).
                log.info(
                    "told %s to %d sockets in %.0f ms",
                    kind,
                    self.count(),
                    (time.monotonic() - started) * 1000,
                )

        task = asyncio.create_task(run())
        room.broadcast, room.broadcast_kind = task, kind
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _tell_everyone(self, room: Room, kind: str) -> None:
        if kind in STATUS_TO_EVERYONE:
            # Every fan's status changed (sold out or every seat held, or no longer): each
            # hears it now, place and all, not at their turn.
            await self._status_to_everyone(room)
            return
        fans = room.fans()
        data = orjson.dumps({"type": kind, "event_id": fans[0].event.event_id}) if fans else b""
        for n, fan in enumerate(fans, 1):
            if kind == "resumed":
                # Everyone told "paused" hears at once that the line moves again (as small
                # a message as the pause); their new place and wait follow at their turn.
                if "paused" in fan.told and await self.teller.resumed(fan):
                    fan.told.discard("paused")
            elif kind == "sold_out" and fan.placement.kind == "admitted":
                # The sell-out ended the session (the fan is back at the front of the
                # line, should seats come back): told as the fans in line are.
                fan.placement = as_sold_out(fan.placement)
                fan.told.discard("admitted")
                await self.teller.tell(fan, kind, data)
            elif fan.placement.kind in (("waiting", "pre") if kind == "sold_out" else ("waiting",)):
                # Who is still in line hears it (a pre-queue fan of a sold-out event too).
                await self.teller.tell(fan, kind, data)
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # admissions meanwhile go out too
        if kind == "sold_out":
            await self._status_to_everyone(room)

    async def _status_to_everyone(self, room: Room) -> None:
        """A status to every fan of the room whose status changed, from fresh figures and
        places (a script call per thousand fans, as a round's)."""
        if not room.by_user:
            return
        event_id = next(iter(room.fans())).event.event_id
        figures = await self.figures.fresh(event_id)
        users = list(room.by_user)
        await self.rounds.look(event_id, room, users, figures, turn=None, wall=time.time())
