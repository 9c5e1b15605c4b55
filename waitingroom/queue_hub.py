"""The queue websockets of this process and what is pushed to them.

One push loop per event, not per socket: every half second it asks Redis, in one script
call, for the places of half the fans connected here (each fan every second; halves, so
the sends of a round do not come in one burst), and sends a status to those whose position
changed (see :func:`_moved`) or who heard nothing for 4.4 s (so at least every 5 s).
Admissions, sell-outs and pauses arrive at once over Redis pub/sub from whichever process
caused them, and are told at once.

Sends never wait on a slow client: a socket whose send buffer holds more than a few
pushes is skipped (so the transport never pauses and a send never blocks), and closed when
it stays that way. So one slow phone cannot hold up the fans behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, web

from ticketing.config import Settings
from ticketing.dependencies import REDIS_ERRORS
from ticketing.lifecycle import Backoff, wait_any
from waitingroom.queue_events import QueueEvent, QueueEvents
from waitingroom.queue_metrics import DROPPED_SOCKETS, OPEN_SOCKETS, PUSH_LAG
from waitingroom.queue_status import FiguresCache, admitted_fields, status_body
from waitingroom.queue_store import Figures, Placement, QueueStore
from waitingroom.queue_ticket import issue_ticket

log = logging.getLogger(__name__)

SLICES = 2  # a fan's turn comes every SLICES rounds
ROUND_SECONDS = 0.5
KEEPALIVE_SECONDS = 4.4  # plus at most a turn (1 s) minus a round: at least every 5 s
TOUCH_SECONDS = 5.0  # connected fans count as seen this often (abandonment)
# Well under the transport's high-water mark (64 KiB): below it a send never waits.
SLOW_BUFFER_BYTES = 16 * 1024
SLOW_DROP_SECONDS = 10.0
YIELD_EVERY = 256
CLOSE_TO_THE_FRONT = 100

_STATUS_LAG = PUSH_LAG.labels("status")
_ADMITTED_LAG = PUSH_LAG.labels("admitted")


@dataclass(eq=False)
class Fan:
    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    user_id: str
    event: QueueEvent
    placement: Placement
    ticket: str = ""
    ticket_for: tuple[str, int] = ("", 0)
    admission: dict[str, str] = field(default_factory=dict)
    admission_for: int = 0
    last_position: int | None = None
    last_status: str = ""
    last_sent: float = 0.0
    told: set[str] = field(default_factory=set)
    slow_since: float | None = None
    end_reason: str = "ended"

    @property
    def slice(self) -> int:
        return zlib.crc32(self.user_id.encode()) % SLICES


class Hub:
    def __init__(
        self, store: QueueStore, settings: Settings, figures: FiguresCache, events: QueueEvents
    ) -> None:
        self.store = store
        self.settings = settings
        self.figures = figures
        self.events = events
        self._fans: dict[int, dict[str, set[Fan]]] = {}
        self._loops: dict[int, asyncio.Task[None]] = {}
        self._wake: dict[int, asyncio.Event] = {}
        self._closers: set[asyncio.Task[Any]] = set()
        self._closing = False
        # Connected fans must count as seen well within the abandonment time.
        self.touch_seconds = min(TOUCH_SECONDS, settings.queue_abandon_seconds / 3)

    # --- sockets --------------------------------------------------------------------------

    async def add(self, fan: Fan) -> None:
        event_id = fan.event.event_id
        self._fans.setdefault(event_id, {}).setdefault(fan.user_id, set()).add(fan)
        OPEN_SOCKETS.inc()
        await self._update(fan, fan.placement, await self.figures.get(event_id), time.time())
        loop = self._loops.get(event_id)
        if (loop is None or loop.done()) and not self._closing:
            self._wake[event_id] = asyncio.Event()
            self._loops[event_id] = asyncio.create_task(self._run(event_id))

    def remove(self, fan: Fan) -> None:
        by_user = self._fans.get(fan.event.event_id, {})
        fans = by_user.get(fan.user_id)
        if fans is not None and fan in fans:
            fans.discard(fan)
            OPEN_SOCKETS.dec()
            if not fans:
                del by_user[fan.user_id]

    def count(self) -> int:
        return sum(len(fans) for by_user in self._fans.values() for fans in by_user.values())

    async def close(self) -> None:
        """Close every socket (1001 going away) and stop the push loops."""
        self._closing = True
        for loop in list(self._loops.values()):
            loop.cancel()
        closes = [
            fan.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
            for by_user in self._fans.values()
            for fans in by_user.values()
            for fan in fans
        ]
        if closes:
            await asyncio.wait_for(asyncio.gather(*closes, return_exceptions=True), 5)
        await asyncio.gather(*self._loops.values(), *self._closers, return_exceptions=True)

    # --- the push loop --------------------------------------------------------------------

    async def _run(self, event_id: int) -> None:
        last_touch = [0.0] * SLICES
        turn = 0
        while not self._closing:
            if not self._fans.get(event_id):
                # No await between this check and leaving: add() sees the loop gone.
                self._fans.pop(event_id, None)
                self._loops.pop(event_id, None)
                return
            started = time.monotonic()
            wake = self._wake[event_id]
            # Woken (the queue as a whole changed): everyone at once, not half.
            part = None if wake.is_set() else turn % SLICES
            wake.clear()
            turn += 1
            touch = part is not None and started - last_touch[part] >= self.touch_seconds
            try:
                await self._round(event_id, part, touch)
                if touch:
                    last_touch[part] = started
            except REDIS_ERRORS as exc:
                log.warning("queue push round failed: event_id=%s %s", event_id, exc)
            except Exception:
                log.exception("queue push round failed: event_id=%s", event_id)
            await wait_any(wake, seconds=max(0.0, ROUND_SECONDS - (time.monotonic() - started)))

    async def _round(self, event_id: int, part: int | None, touch: bool) -> None:
        started = time.time()
        by_user = self._fans.get(event_id, {})
        users = [
            user
            for user, fans in by_user.items()
            if fans and (part is None or next(iter(fans)).slice == part)
        ]
        if not users:
            return
        figures = await self.figures.get(event_id)
        _, _, placements = await self.store.positions(event_id, users, touch)
        for n, (user, placement) in enumerate(zip(users, placements, strict=True), 1):
            for fan in list(by_user.get(user, ())):
                await self._update(fan, placement, figures, started)
            if n % YIELD_EVERY == 0:
                # Sends to healthy sockets never wait, so without this a round over
                # thousands of sockets would hold up joins and admissions meanwhile.
                await asyncio.sleep(0)

    async def _update(
        self, fan: Fan, placement: Placement, figures: Figures, started: float
    ) -> None:
        if placement.kind == "none":
            await self._end(fan, fan.end_reason)
            return
        if placement.kind == "waiting" and figures.sold_out:
            placement = Placement("sold_out", *_rest(placement))
        fan.placement = placement
        if placement.kind == "admitted" and "admitted" not in fan.told:
            await self._tell_admitted(fan, placement.place, started)
        if placement.kind == "sold_out":
            await self._tell(fan, "sold_out")
        if figures.config.paused and placement.kind == "waiting":
            await self._tell(fan, "paused")
        else:
            fan.told.discard("paused")
        body = status_body(
            self.settings, fan.event, fan.user_id, placement, figures, self._ticket(fan),
            self._admission(fan) if placement.kind == "admitted" else None,
        )
        now = time.monotonic()
        if (
            body["status"] != fan.last_status
            or _moved(fan.last_position, body["position"])
            or now - fan.last_sent >= KEEPALIVE_SECONDS
        ):
            if await self._send(fan, {"type": "status", **body}):
                fan.last_position, fan.last_status, fan.last_sent = (
                    body["position"], body["status"], now,
                )
                _STATUS_LAG.observe(max(0.0, time.time() - started))

    def _ticket(self, fan: Fan) -> str:
        p = fan.placement
        if fan.ticket_for != (p.kind, p.place):
            fan.ticket = issue_ticket(
                self.settings, fan.event.event_id, fan.user_id, p.kind, p.place, p.epoch
            )
            fan.ticket_for = (p.kind, p.place)
        return fan.ticket

    def _admission(self, fan: Fan) -> dict[str, str]:
        expiry_ms = fan.placement.place
        if fan.admission_for != expiry_ms:
            fan.admission = admitted_fields(
                self.settings, fan.event.event_id, fan.user_id, expiry_ms
            )
            fan.admission_for = expiry_ms
        return fan.admission

    async def _tell(self, fan: Fan, kind: str, **fields: Any) -> bool:
        """Send a one-off message (admitted, sold_out, paused) unless it was already; a
        send skipped for a slow socket is tried again on a later round."""
        if kind in fan.told:
            return False
        message = {"type": kind, "event_id": fan.event.event_id, **fields}
        if not await self._send(fan, message):
            return False
        fan.told.add(kind)
        return True

    async def _tell_admitted(self, fan: Fan, expiry_ms: int, since: float) -> None:
        fan.placement = Placement("admitted", expiry_ms, 0, 0, fan.placement.epoch, 0, True)
        fields = self._admission(fan)
        told = await self._tell(
            fan,
            "admitted",
            admission_token=fields["admission_token"],
            expires_at=fields["admission_expires_at"],
        )
        if told:
            _ADMITTED_LAG.observe(max(0.0, time.time() - since))

    async def _end(self, fan: Fan, reason: str) -> None:
        await self._send(
            fan, {"type": "session_ended", "event_id": fan.event.event_id, "reason": reason}
        )
        self.remove(fan)
        self._close_later(fan, WSCloseCode.OK)

    # --- sending --------------------------------------------------------------------------

    async def _send(self, fan: Fan, message: dict[str, Any]) -> bool:
        """Whether the message went out (False: the socket is closing, or slow)."""
        transport = fan.transport
        if fan.ws.closed or transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > SLOW_BUFFER_BYTES:
            now = time.monotonic()
            fan.slow_since = fan.slow_since or now
            if now - fan.slow_since > SLOW_DROP_SECONDS:
                self._drop(fan)
            return False
        fan.slow_since = None
        # No timeout needed: with the buffer this far under the high-water mark the
        # transport is not paused, so the send writes and returns without waiting.
        try:
            await fan.ws.send_str(json.dumps(message))
        except (ConnectionError, RuntimeError):
            self._drop(fan)
            return False
        return True

    def _drop(self, fan: Fan) -> None:
        DROPPED_SOCKETS.inc()
        self.remove(fan)
        if fan.transport is not None:
            fan.transport.abort()

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
        if kind in ("config", "paused", "resumed", "sold_out", "on_sale"):
            self.figures.forget(event_id)
        by_user = self._fans.get(event_id)
        if not by_user:
            return
        if kind == "admitted":
            since = message["at"] / 1000
            for user, expiry_ms in message["users"]:
                for fan in list(by_user.get(user, ())):
                    await self._tell_admitted(fan, expiry_ms, since)
        elif kind == "ended":
            for user in message["users"]:
                for fan in list(by_user.get(user, ())):
                    await self._end(fan, message["reason"])
        elif kind in ("sold_out", "paused"):
            # Who is still in line hears it (a pre-queue fan of a sold-out event too).
            concerned = ("waiting", "pre") if kind == "sold_out" else ("waiting",)
            for fans in list(by_user.values()):
                for fan in list(fans):
                    if fan.placement.kind in concerned:
                        await self._tell(fan, kind)
        wake = self._wake.get(event_id)
        if wake is not None and kind not in ("admitted", "ended"):
            # The queue as a whole changed: a status round now, with fresh figures. (Not for
            # admissions, told directly above: they come five times a second.)
            wake.set()


def _moved(before: int | None, now: int | None) -> bool:
    """A position change worth a push: any change in the first hundred places (where each
    step shows), else a change of at least 1%. A fan 10,000th in line moving by ten each
    second hears every 4 s (the keepalive) instead of every second, which is most of what
    a process with thousands of sockets would otherwise spend its time sending."""
    if before == now:
        return False
    if before is None or now is None or min(before, now) <= CLOSE_TO_THE_FRONT:
        return True
    return abs(before - now) * 100 >= before


def _rest(placement: Placement) -> tuple[int, int, int, str, int, bool]:
    p = placement
    return p.place, p.rank, p.pre_ahead, p.epoch, p.new, p.drawn
