"""A fan's queue websocket as the push loop sees it, and sending to it.

Sends never wait on a slow client: a socket whose send buffer holds more than a few pushes
is skipped (so the transport never pauses and a send never blocks) and closed when it stays
that way. So one slow phone cannot hold up the fans behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from ticketing.config import Settings
from waitingroom.queue.events import QueueEvent
from waitingroom.queue.metrics import DROPPED_SOCKETS
from waitingroom.queue.status import admitted_fields
from waitingroom.queue.store import Placement
from waitingroom.queue.ticket import issue_ticket

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.queue_fan")

# Well under the transport's high-water mark (64 KiB): below it a send never waits.
SLOW_BUFFER_BYTES = 16 * 1024
SLOW_DROP_SECONDS = 10.0


@dataclass(eq=False, slots=True)
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
    turn: int = 0  # its keepalive slice
    due_at: float = 0.0  # admitted_total from which it is due a look
    told: set[str] = field(default_factory=set)
    slow_since: float | None = None
    end_reason: str = "ended"

    def queue_ticket(self, settings: Settings) -> str:
        """The queue ticket for where the fan stands, signed once per place."""
        p = self.placement
        if self.ticket_for != (p.kind, p.place):
            self.ticket = issue_ticket(
                settings, self.event.event_id, self.user_id, p.kind, p.place, p.epoch
            )
            self.ticket_for = (p.kind, p.place)
        return self.ticket

    def admission_fields(self, settings: Settings) -> dict[str, str]:
        """The admitted fan's token fields, signed once per session."""
        expiry_ms = self.placement.place
        if self.admission_for != expiry_ms:
            self.admission = admitted_fields(
                settings, self.event.event_id, self.user_id, expiry_ms, self.placement.epoch
            )
            self.admission_for = expiry_ms
        return self.admission


class Sender:
    """Sends pushes (JSON text) to fans' sockets, skipping a slow one and dropping it (and
    ``forget``-ting it) once it has been slow for ``slow_drop_seconds``."""

    def __init__(
        self,
        forget: Callable[[Fan], None],
        slow_buffer_bytes: int = SLOW_BUFFER_BYTES,
        slow_drop_seconds: float = SLOW_DROP_SECONDS,
    ) -> None:
        self.forget = forget
        self.slow_buffer_bytes = slow_buffer_bytes
        self.slow_drop_seconds = slow_drop_seconds

    async def send(self, fan: Fan, data: bytes) -> bool:
        """Whether the message went out (False: the socket is closing, or slow)."""
        transport = fan.transport
        if fan.ws.closed or transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > self.slow_buffer_bytes:
            now = time.monotonic()
            fan.slow_since = fan.slow_since or now
            if now - fan.slow_since > self.slow_drop_seconds:
                log.info(
                    "queue socket dropped, client too slow: event_id=%s user=%s",
                    fan.event.event_id,
                    fan.user_id,
                )
                self.drop(fan)
            return False
        fan.slow_since = None
        # No timeout needed: with the buffer this far under the high-water mark the
        # transport is not paused, so the send writes and returns without waiting.
        try:
            await fan.ws.send_frame(data, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            self.drop(fan)
            return False
        return True

    def drop(self, fan: Fan) -> None:
        DROPPED_SOCKETS.inc()
        self.forget(fan)
        if fan.transport is not None:
            fan.transport.abort()
