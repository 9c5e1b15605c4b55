"""What one fan's queue websocket is told: a status when something it shows changed or
its keepalive is due, and the one-off messages (admitted, sold_out, paused, resumed,
session_ended), each once. Sends never wait on a slow client (see
:class:`waitingroom.queue.fan.Sender`)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import WSCloseCode

from ticketing.config import Settings
from waitingroom.queue.fan import Fan, Sender
from waitingroom.queue.metrics import PUSH_LAG
from waitingroom.queue.status import status_body
from waitingroom.queue.store import Figures, Placement

CLOSE_TO_THE_FRONT = 100
MOVED_SHARE = 10  # due again after admissions of a tenth of its last position

_ADMITTED_LAG = PUSH_LAG.labels("admitted")


class Teller:
    def __init__(
        self,
        settings: Settings,
        sender: Sender,
        remove: Callable[[Fan], None],
        keepalive_after: float,
    ) -> None:
        """``remove``: forget a socket whose session ended; ``keepalive_after``: seconds
        since its last status after which a fan on its turn hears one again."""
        self.settings = settings
        self.sender = sender
        self.remove = remove
        self.keepalive_after = keepalive_after
        self.closers: set[asyncio.Task[Any]] = set()

    async def update(
        self, fan: Fan, placement: Placement, figures: Figures, turn: bool, wall: float
    ) -> bool:
        """Tell the fan what changed; whether a status went out. ``turn``: its keepalive
        turn."""
        if placement.kind in ("none", "lost"):
            # Gone under another epoch than the fan's own (a Redis restart without its
            # data), or gone without ever departing (a failover lost the join: the
            # promoted replica never had it): the queue lost the place, not the fan.
            # "lost" tells the page to join again at once with its queue ticket, which
            # restores the place or the session (tests/integration/queue/test_redis_loss.py).
            lost = placement.kind == "lost" or (
                bool(fan.placement.epoch) and placement.epoch != fan.placement.epoch
            )
            await self.end(fan, "lost" if lost else fan.end_reason)
            return False
        if placement.kind == "waiting" and figures.sold_out:
            placement = as_sold_out(placement)
        fan.placement = placement
        if placement.kind != "admitted":
            fan.told.discard("admitted")  # a sell-out ended the session: told again if re-admitted
        if placement.kind != "sold_out" and placement.kind != "pre":
            fan.told.discard("sold_out")  # seats came back: a later sell-out is told again
        if placement.kind == "admitted" and "admitted" not in fan.told:
            await self.tell_admitted(fan, placement.place, wall)
        if placement.kind == "sold_out":
            await self.tell(fan, "sold_out")
        if figures.config.paused and placement.kind == "waiting":
            await self.tell(fan, "paused")
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

    async def tell(self, fan: Fan, kind: str, data: bytes | None = None, **fields: Any) -> bool:
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

    async def resumed(self, fan: Fan) -> bool:
        message = {"type": "resumed", "event_id": fan.event.event_id}
        return await self.sender.send(fan, orjson.dumps(message))

    async def tell_admitted(self, fan: Fan, expiry_ms: int, since: float) -> None:
        fan.placement = Placement("admitted", expiry_ms, 0, 0, fan.placement.epoch, 0, True)
        fields = fan.admission_fields(self.settings)
        told = await self.tell(
            fan,
            "admitted",
            admission_token=fields["admission_token"],
            expires_at=fields["admission_expires_at"],
        )
        if told:
            _ADMITTED_LAG.observe(max(0.0, time.time() - since))

    async def end(self, fan: Fan, reason: str) -> None:
        message = {"type": "session_ended", "event_id": fan.event.event_id, "reason": reason}
        await self.sender.send(fan, orjson.dumps(message))
        self.remove(fan)
        self._close_later(fan, WSCloseCode.OK)

    def _close_later(self, fan: Fan, code: int) -> None:
        # Closing waits for the client's close frame; never on the push loop's time.
        task = asyncio.create_task(fan.ws.close(code=code))
        self.closers.add(task)
        task.add_done_callback(self.closers.discard)


def as_sold_out(placement: Placement) -> Placement:
    p = placement
    return Placement("sold_out", p.place, p.rank, p.pre_ahead, p.epoch, p.new, p.drawn)


def _worth_a_look(position: int | None) -> float:
    """Admissions after which a fan last shown ``position`` is due a look again: none near
    the front (each step shows), a tenth of its position further back, never for a fan
    with no position (pre-queue, admitted, sold out: its turn and the notifications do)."""
    if position is None:
        return math.inf
    if position <= CLOSE_TO_THE_FRONT:
        return 0
    return math.ceil(position / MOVED_SHARE)
