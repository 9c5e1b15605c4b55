"""The queue websockets of this process and what is pushed to them.

One push loop per event, not per socket. Every half second (a round) it asks Redis, in one
script call per thousand fans, for the places of the fans *due* a look, and sends a status
to those of them for whom something shown changed (status or position) or whose keepalive
is due. Who is due, so that a round's work stays bounded however long the line:

- keepalive: each fan is given one of nine slices when it connects (the emptiest, so the
  slices stay even), and a slice's turn comes every ninth round (4.5 s): its fans are looked
  at and sent a status unless they just had one, so everyone hears at least every 5 s, a
  ninth of the sockets at a time; the same look counts them as seen (abandonment);
- near the front (last position <= 100, where each step shows): every round;
- probably moved a lot: a fan whose last position was p is due again once the queue as a
  whole has admitted p / 10 more fans (``admitted_total`` of the figures), i.e. it has
  probably moved by a tenth or more: at 50 admissions a second the fan 1,000th in line is
  due every two seconds, the fan 10,000th at its turn only. (A fan with no position, in
  the pre-queue or admitted, is looked at on its turn.)

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
import math
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSCloseCode

from ticketing.config import Settings
from ticketing.dependencies import REDIS_ERRORS
from ticketing.lifecycle import Backoff, wait_any
from waitingroom.queue.events import QueueEvents
from waitingroom.queue.fan import SLOW_BUFFER_BYTES, SLOW_DROP_SECONDS, Fan, Sender
from waitingroom.queue.metrics import OPEN_SOCKETS, PUSH_LAG
from waitingroom.queue.socket_heap import SocketHeap
from waitingroom.queue.status import FiguresCache, status_body
from waitingroom.queue.store import Figures, Placement, QueueStore

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.queue_hub")

ROUND_SECONDS = 0.5
SLICES = 9  # a fan's keepalive turn comes every SLICES rounds (4.5 s)
# The contract's 5 s, less what a round may run late: a fan whose next turn would leave it
# silent longer than this hears a status now.
KEEPALIVE_SECONDS = 4.75
TOUCH_SECONDS = 5.0  # connected fans count as seen this often (abandonment)
CLOSE_TO_THE_FRONT = 100
MOVED_SHARE = 10  # due again after admissions of a tenth of its last position
POSITIONS_BATCH = 1000  # fans per script call: Redis runs nothing else meanwhile
YIELD_EVERY = 32  # fans between yields in a round, so an admission waits a few ms at most

# Queue-wide changes after which every fan's status is told at once, not at their turn.
STATUS_TO_EVERYONE = ("on_sale", "all_held")

_STATUS_LAG = PUSH_LAG.labels("status")
_ADMITTED_LAG = PUSH_LAG.labels("admitted")


@dataclass(eq=False)
class Room:
    """One event's sockets in this process, and its push loop's state."""

    by_user: dict[str, set[Fan]]
    slices: list[set[Fan]]
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # a queue-wide change
    loop: asyncio.Task[None] | None = None
    broadcast: asyncio.Task[None] | None = None  # the latest queue-wide message being told
    broadcast_kind: str = ""  # ... and what it tells
    status_pending: bool = False  # a status to everyone is waiting to start

    def fans(self) -> list[Fan]:
        return [fan for fans in self.slices for fan in fans]


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
        self.sender = Sender(self.remove, slow_buffer_bytes, slow_drop_seconds)
        self._rooms: dict[int, Room] = {}
        self._closers: set[asyncio.Task[Any]] = set()
        self._broadcasts: set[asyncio.Task[None]] = set()
        self._closing = False
        self.heap = SocketHeap()
        # Connected fans must count as seen well within the abandonment time: their turn
        # (when they are touched) comes at least that often.
        touch_seconds = min(TOUCH_SECONDS, settings.queue_abandon_seconds / 3)
        self.slices = max(1, min(SLICES, int(touch_seconds / ROUND_SECONDS)))
        self.keepalive_after = max(0.0, KEEPALIVE_SECONDS - self.slices * ROUND_SECONDS)

    # --- sockets --------------------------------------------------------------------------

    async def add(self, fan: Fan) -> None:
        event_id = fan.event.event_id
        room = self._rooms.get(event_id)
        if room is None:
            room = self._rooms[event_id] = Room({}, [set() for _ in range(self.slices)])
        room.by_user.setdefault(fan.user_id, set()).add(fan)
        fan.turn = min(range(self.slices), key=lambda n: len(room.slices[n]))
        room.slices[fan.turn].add(fan)
        OPEN_SOCKETS.inc()
        figures = await self.figures.get(event_id)
        await self._update(fan, fan.placement, figures, True, time.time())
        if (room.loop is None or room.loop.done()) and not self._closing:
            room.loop = asyncio.create_task(self._run(event_id, room))

    def remove(self, fan: Fan) -> None:
        room = self._rooms.get(fan.event.event_id)
        fans = None if room is None else room.by_user.get(fan.user_id)
        if room is None or fans is None or fan not in fans:
            return
        fans.discard(fan)
        room.slices[fan.turn].discard(fan)
        OPEN_SOCKETS.dec()
        if not fans:
            del room.by_user[fan.user_id]

    def count(self) -> int:
        return sum(len(fans) for room in self._rooms.values() for fans in room.slices)

    async def close(self) -> None:
        """Close every socket (1001 going away) and stop the push loops."""
        self._closing = True
        loops = [room.loop for room in self._rooms.values() if room.loop is not None]
        loops += self._broadcasts
        for loop in loops:
            loop.cancel()
        closes = [
            fan.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
            for room in self._rooms.values()
            for fan in room.fans()
        ]
        if closes:
            await asyncio.wait_for(asyncio.gather(*closes, return_exceptions=True), 5)
        await asyncio.gather(*loops, *self._closers, return_exceptions=True)

    # --- the push loop --------------------------------------------------------------------

    async def _run(self, event_id: int, room: Room) -> None:
        turn = 0
        while not self._closing:
            if not room.by_user:
                # No await between this check and leaving: add() sees the room gone.
                if self._rooms.get(event_id) is room:
                    del self._rooms[event_id]
                return
            started = time.monotonic()
            room.wake.clear()
            try:
                await self._round(event_id, room, turn % self.slices, started)
            except REDIS_ERRORS as exc:
                log.warning("queue push round failed: event_id=%s %s", event_id, exc)
            except Exception:
                log.exception("queue push round failed: event_id=%s", event_id)
            turn += 1
            self.heap.sockets_open(self.count())
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
        users = list(due)
        sent = 0
        for start in range(0, len(users), POSITIONS_BATCH):
            batch = users[start : start + POSITIONS_BATCH]
            # Every look counts the fan as seen: each is looked at every turn at least.
            _, _, placements = await self.store.positions(event_id, batch, True)
            for n, (user, placement) in enumerate(zip(batch, placements, strict=True), 1):
                for fan in list(room.by_user.get(user, ())):
                    sent += await self._update(fan, placement, figures, fan.turn == part, wall)
                if n % YIELD_EVERY == 0:
                    # Sends to healthy sockets never wait, so without this a round over
                    # thousands of fans would hold up joins and admissions meanwhile.
                    await asyncio.sleep(0)
        if sent:
            _STATUS_LAG.observe(time.monotonic() - started)  # the round's last push

    async def _update(
        self, fan: Fan, placement: Placement, figures: Figures, turn: bool, wall: float
    ) -> bool:
        """Tell the fan what changed; whether a status went out. ``turn``: its keepalive
        turn."""
        if placement.kind == "none":
            await self._end(fan, fan.end_reason)
            return False
        if placement.kind == "waiting" and figures.sold_out:
            placement = Placement("sold_out", *_rest(placement))
        fan.placement = placement
        if placement.kind != "admitted":
            fan.told.discard("admitted")  # a sell-out ended the session: told again if re-admitted
        if placement.kind != "sold_out" and placement.kind != "pre":
            fan.told.discard("sold_out")  # seats came back: a later sell-out is told again
        if placement.kind == "admitted" and "admitted" not in fan.told:
            await self._tell_admitted(fan, placement.place, wall)
        if placement.kind == "sold_out":
            await self._tell(fan, "sold_out")
        if figures.config.paused and placement.kind == "waiting":
            await self._tell(fan, "paused")
        else:
            fan.told.discard("paused")
        body = status_body(
            self.settings,
            fan.event,
            fan.user_id,
            placement,
            figures,
            fan.queue_ticket(self.settings),
            fan.admission_fields(self.settings) if placement.kind == "admitted" else None,
        )
        position, status = body["position"], body["status"]
        now = time.monotonic()
        pushed = False
        if (
            status != fan.last_status
            or position != fan.last_position
            or (turn and now - fan.last_sent >= self.keepalive_after)
        ):
            if not await self.sender.send(fan, orjson.dumps({"type": "status", **body})):
                return False  # slow (or closing): looked at again next round
            fan.last_position, fan.last_status, fan.last_sent = position, status, now
            pushed = True
        fan.due_at = figures.admitted_total + _worth_a_look(fan.last_position)
        return pushed

    async def _tell(self, fan: Fan, kind: str, data: bytes | None = None, **fields: Any) -> bool:
        """Send a one-off message (admitted, sold_out, paused) unless it was already; a
        send skipped for a slow socket is tried again on a later round. ``data``: the
        message already encoded (a broadcast encodes it once for every fan)."""
        if kind in fan.told:
            return False
        if data is None:
            data = orjson.dumps({"type": kind, "event_id": fan.event.event_id, **fields})
        if not await self.sender.send(fan, data):
            return False
        fan.told.add(kind)
        if kind == "sold_out":
            # It says all a status would (no place, nothing to wait for): the status pass
            # that follows a sell-out sends nothing more to this fan, so every fan hears
            # one message, not two, while a whole line is being told at once.
            fan.last_status, fan.last_position, fan.last_sent = kind, None, time.monotonic()
        return True

    async def _resumed(self, fan: Fan) -> bool:
        message = {"type": "resumed", "event_id": fan.event.event_id}
        return await self.sender.send(fan, orjson.dumps(message))

    async def _tell_admitted(self, fan: Fan, expiry_ms: int, since: float) -> None:
        fan.placement = Placement("admitted", expiry_ms, 0, 0, fan.placement.epoch, 0, True)
        fields = fan.admission_fields(self.settings)
        told = await self._tell(
            fan,
            "admitted",
            admission_token=fields["admission_token"],
            expires_at=fields["admission_expires_at"],
        )
        if told:
            _ADMITTED_LAG.observe(max(0.0, time.time() - since))

    async def _end(self, fan: Fan, reason: str) -> None:
        message = {"type": "session_ended", "event_id": fan.event.event_id, "reason": reason}
        await self.sender.send(fan, orjson.dumps(message))
        self.remove(fan)
        self._close_later(fan, WSCloseCode.OK)

    def _close_later(self, fan: Fan, code: int) -> None:
        # Closing waits for the client's close frame; never on the push loop's time.
        task = asyncio.create_task(fan.ws.close(code=code))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    # --- notifications from every process -------------------------------------------------

    async def listen(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            pubsub = self.store.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.store.channel)
                backoff.reset()
                while not stop.is_set():
                    message = await pubsub.get_message(timeout=0.5)
                    if message is not None:
                        await self._on_message(json.loads(message["data"]))
            except REDIS_ERRORS as exc:
                log.warning("queue notifications: redis unavailable: %s", exc)
                await backoff.sleep(stop)
            except Exception:
                log.exception("queue notification failed")
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()

    async def _on_message(self, message: dict[str, Any]) -> None:
        event_id, kind = message["event_id"], message["type"]
        if kind in ("config", "paused", "resumed", "sold_out", "on_sale", "all_held"):
            self.figures.forget(event_id)
        room = self._rooms.get(event_id)
        if room is None or not room.by_user:
            return
        if kind in ("admitted", "ended"):
            await self._tell_each(room.by_user, kind, message)
        elif kind in ("sold_out", "paused", "resumed", "on_sale", "all_held"):
            self._broadcast(room, kind)
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
                    await self._tell_admitted(fan, expiry_ms, since)
        else:
            for user in message["users"]:
                for fan in list(by_user.get(user, ())):
                    await self._end(fan, message["reason"])

    def _broadcast(self, room: Room, kind: str) -> None:
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
        self._broadcasts.add(task)
        task.add_done_callback(self._broadcasts.discard)

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
                if "paused" in fan.told and await self._resumed(fan):
                    fan.told.discard("paused")
            elif kind == "sold_out" and fan.placement.kind == "admitted":
                # The sell-out ended the session (the fan is back at the front of the
                # line, should seats come back): told as the fans in line are.
                fan.placement = Placement("sold_out", *_rest(fan.placement))
                fan.told.discard("admitted")
                await self._tell(fan, kind, data)
            elif fan.placement.kind in (("waiting", "pre") if kind == "sold_out" else ("waiting",)):
                # Who is still in line hears it (a pre-queue fan of a sold-out event too).
                await self._tell(fan, kind, data)
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
        wall = time.time()
        for start in range(0, len(users), POSITIONS_BATCH):
            batch = users[start : start + POSITIONS_BATCH]
            _, _, placements = await self.store.positions(event_id, batch, False)
            for n, (user, placement) in enumerate(zip(batch, placements, strict=True), 1):
                for fan in list(room.by_user.get(user, ())):
                    await self._update(fan, placement, figures, False, wall)
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)


def _worth_a_look(position: int | None) -> float:
    """Admissions after which a fan last shown ``position`` is due a look again: none near
    the front (each step shows), a tenth of its position further back, never for a fan
    with no position (pre-queue, admitted, sold out: its turn and the notifications do)."""
    if position is None:
        return math.inf
    if position <= CLOSE_TO_THE_FRONT:
        return 0
    return math.ceil(position / MOVED_SHARE)


def _rest(placement: Placement) -> tuple[int, int, int, str, int, bool]:
    p = placement
    return p.place, p.rank, p.pre_ahead, p.epoch, p.new, p.drawn
