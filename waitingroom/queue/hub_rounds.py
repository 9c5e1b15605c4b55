"""The push loop: one per event in each process, not per socket.

Every half second (a round) it asks Redis, in one script call per thousand fans, for the
places of the fans *due* a look, and sends a status to those of them for whom something
shown changed (status or position) or whose keepalive is due. Who is due, so that a
round's work stays bounded however long the line:

- keepalive: each fan is given one of nine slices when it connects (the emptiest, so the
  slices stay even), and a slice's turn comes every ninth round (4.5 s): its fans are looked
  at and sent a status unless they just had one, so everyone hears at least every 5 s, a
  ninth of the sockets at a time;
- near the front (last position <= 100, where each step shows): every round;
- probably moved a lot: a fan whose last position was p is due again once the queue as a
  whole has admitted p / 10 more fans (``admitted_total`` of the figures), i.e. it has
  probably moved by a tenth or more: at 50 admissions a second the fan 1,000th in line is
  due every two seconds, the fan 10,000th at its turn only. (A fan with no position, in
  the pre-queue or admitted, is looked at on its turn.)

A fan skipped as slow is looked at again every round, until it is dropped.

Presence is not the rounds' business: a loop of its own (:meth:`PushRounds._presence`)
counts every fan with an open socket as seen (abandonment) every nine rounds' time, in
calls that carry only their names. In a saturated process (an on-sale's paid phase on two
cores) a round can take seconds, nine of them more than the abandonment time, and fans who
never left lost their place while their page stood open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from ticketing.dependencies import REDIS_ERRORS
from ticketing.lifecycle import wait_any
from waitingroom.queue.hub_rooms import Room, Rooms
from waitingroom.queue.hub_tell import Teller
from waitingroom.queue.metrics import PUSH_LAG
from waitingroom.queue.socket_heap import SocketHeap
from waitingroom.queue.status import FiguresCache
from waitingroom.queue.store import Figures, QueueStore

# The hub's name, which it logged under before it was split: its log lines read as they did.
log = logging.getLogger("waitingroom.queue_hub")

ROUND_SECONDS = 0.5
SLICES = 9  # a fan's keepalive turn comes every SLICES rounds (4.5 s)
# The contract's 5 s, less what a round may run late: a fan whose next turn would leave it
# silent longer than this hears a status now.
KEEPALIVE_SECONDS = 4.75
TOUCH_SECONDS = 5.0  # connected fans count as seen this often (abandonment)
POSITIONS_BATCH = 1000  # fans per script call: Redis runs nothing else meanwhile
YIELD_EVERY = 32  # fans between yields in a round, so an admission waits a few ms at most

_STATUS_LAG = PUSH_LAG.labels("status")


def turns(abandon_seconds: float) -> tuple[int, float]:
    """(the keepalive slices, the seconds after its last status from which a fan on its
    turn hears one again)."""
    # Connected fans must count as seen well within the abandonment time: their turn
    # (when they are touched) comes at least that often.
    touch_seconds = min(TOUCH_SECONDS, abandon_seconds / 3)
    slices = max(1, min(SLICES, int(touch_seconds / ROUND_SECONDS)))
    return slices, max(0.0, KEEPALIVE_SECONDS - slices * ROUND_SECONDS)


class PushRounds:
    def __init__(
        self,
        store: QueueStore,
        figures: FiguresCache,
        teller: Teller,
        rooms: Rooms,
        heap: SocketHeap,
    ) -> None:
        self.store = store
        self.figures = figures
        self.teller = teller
        self.rooms = rooms
        self.heap = heap
        self.closing = False
        # The keepalive turn's period: within a third of the abandonment time (see turns).
        self.touch_seconds = rooms.slices * ROUND_SECONDS

    def start(self, event_id: int, room: Room) -> None:
        """The room's push and presence loops, unless they run already (or the process is
        closing)."""
        if self.closing:
            return
        if room.loop is None or room.loop.done():
            room.loop = asyncio.create_task(self._run(event_id, room))
        if room.presence is None or room.presence.done():
            room.presence = asyncio.create_task(self._presence(event_id, room))

    async def _presence(self, event_id: int, room: Room) -> None:
        """Every ``touch_seconds``: the room's fans in line count as seen, a thousand names a
        call, until the room is gone."""
        while not self.closing and self.rooms.get(event_id) is room:
            started = time.monotonic()
            users = list(room.by_user)
            try:
                for start in range(0, len(users), POSITIONS_BATCH):
                    await self.store.touch(event_id, users[start : start + POSITIONS_BATCH])
            except REDIS_ERRORS as exc:
                log.warning("queue presence failed: event_id=%s %s", event_id, exc)
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, self.touch_seconds - elapsed))

    async def _run(self, event_id: int, room: Room) -> None:
        turn = 0
        while not self.closing:
            if self.rooms.gone_if_empty(event_id, room):
                return
            started = time.monotonic()
            room.wake.clear()
            try:
                await self._round(event_id, room, turn % self.rooms.slices, started)
            except REDIS_ERRORS as exc:
                log.warning("queue push round failed: event_id=%s %s", event_id, exc)
            except Exception:
                log.exception("queue push round failed: event_id=%s", event_id)
            turn += 1
            self.heap.sockets_open(self.rooms.count())
            elapsed = time.monotonic() - started
            await wait_any(room.wake, seconds=max(0.0, ROUND_SECONDS - elapsed))

    async def _round(self, event_id: int, room: Room, part: int, started: float) -> None:
        wall = time.time()
        figures = await self.figures.get(event_id)
        total = figures.admitted_total
        due = dict.fromkeys(fan.user_id for fan in room.slices[part])  # each user once
        due.update(
            (fan.user_id, None) for fans in room.slices for fan in fans if fan.due_at <= total
        )
        sent = await self.look(event_id, room, list(due), figures, turn=part, wall=wall)
        if sent:
            _STATUS_LAG.observe(time.monotonic() - started)  # the round's last push

    async def look(
        self,
        event_id: int,
        room: Room,
        users: Sequence[str],
        figures: Figures,
        *,
        turn: int | None,
        wall: float,
    ) -> int:
        """Look at where each of ``users`` stands (a script call per thousand) and update
        their sockets; ``turn``: the slice whose keepalive turn it is. How many statuses
        went out."""
        sent = 0
        for start in range(0, len(users), POSITIONS_BATCH):
            batch = users[start : start + POSITIONS_BATCH]
            _, _, placements = await self.store.positions(event_id, batch)
            for n, (user, placement) in enumerate(zip(batch, placements, strict=True), 1):
                for fan in list(room.by_user.get(user, ())):
                    sent += await self.teller.update(
                        fan, placement, figures, fan.turn == turn, wall
                    )
                if n % YIELD_EVERY == 0:
                    # Sends to healthy sockets never wait, so without this a round over
                    # thousands of fans would hold up joins and admissions meanwhile.
                    await asyncio.sleep(0)
        return sent
