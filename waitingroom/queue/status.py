"""A fan's status as the join and status routes answer it and the websocket pushes it,
and the per-process cache of each queue's figures that goes into it."""

from __future__ import annotations

import asyncio
import functools
import time
from datetime import UTC, datetime
from typing import Any

from ticketing.config import Settings
from ticketing.domain.queue import eta_seconds
from ticketing.validation import rfc3339
from waitingroom.queue.admission import admission_for_session
from waitingroom.queue.events import QueueEvent
from waitingroom.queue.store import Figures, Placement, QueueStore

# Figures (queue length, measured rate, paused, sold out) are at most this old in a status;
# the admitter refreshes every queue's figures this often anyway.
FIGURES_MAX_AGE_SECONDS = 1.0

STATUS_OF_KIND = {"waiting": "waiting", "pre": "pre_queue", "admitted": "admitted"}


class FiguresCache:
    """Each queue's figures, read from Redis at most once a second per process however many
    fans ask (concurrent askers share one read)."""

    def __init__(self, store: QueueStore) -> None:
        self.store = store
        self._figures: dict[int, tuple[float, Figures]] = {}
        self._reading: dict[int, asyncio.Future[Figures]] = {}

    async def get(self, event_id: int) -> Figures:
        cached = self._figures.get(event_id)
        if cached is not None and time.monotonic() - cached[0] < FIGURES_MAX_AGE_SECONDS:
            return cached[1]
        return await self.refresh(event_id)

    async def refresh(self, event_id: int) -> Figures:
        reading = self._reading.get(event_id)
        if reading is None:
            # A task of its own, so a caller that gives up does not cancel the others' read.
            reading = asyncio.ensure_future(self._read(event_id))
            reading.add_done_callback(_retrieve)
            self._reading[event_id] = reading
        return await asyncio.shield(reading)

    async def fresh(self, event_id: int) -> Figures:
        """Read now, not sharing a read that may have started before a change."""
        figures = await self.store.figures(event_id)
        self._figures[event_id] = (time.monotonic(), figures)
        return figures

    async def _read(self, event_id: int) -> Figures:
        try:
            figures = await self.store.figures(event_id)
        finally:
            self._reading.pop(event_id, None)
        self._figures[event_id] = (time.monotonic(), figures)
        return figures

    def forget(self, event_id: int) -> None:
        self._figures.pop(event_id, None)


def _retrieve(task: asyncio.Future[Figures]) -> None:
    if not task.cancelled():
        task.exception()  # every asker may have gone; asyncio must not call it unseen


def admitted_fields(
    settings: Settings, event_id: int, user_id: str, expiry_ms: int, epoch: str = ""
) -> dict[str, str]:
    """The admitted fan's token fields: the token of the session ending at ``expiry_ms``,
    in the queue's ``epoch`` (the placement's), so a reserve can tell a session Redis lost
    from one that ended (see waitingroom/queue/admission.py)."""
    expires = expiry_ms // 1000
    return {
        "admission_token": admission_for_session(settings, user_id, event_id, expires, epoch),
        "admission_expires_at": rfc3339(datetime.fromtimestamp(expires, UTC)),
    }


def status_body(
    settings: Settings,
    event: QueueEvent,
    user_id: str,
    placement: Placement,
    figures: Figures,
    queue_ticket: str,
    admission: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The contract's status shape (plus on_sale_at, waiting and admit_rate_per_minute);
    ``admission`` is the admitted fan's token fields when the caller has them already."""
    kind = placement.kind
    body: dict[str, Any] = {
        "event_id": event.event_id,
        "status": STATUS_OF_KIND.get(kind, kind),
        "position": None,
        "ahead": None,
        "eta_seconds": None,
        "queue_ticket": queue_ticket,
        "on_sale_at": event.on_sale_text,
        "waiting": figures.waiting + (0 if figures.drawn else figures.pre_queue),
        "admit_rate_per_minute": round(figures.measured_per_minute, 1),
    }
    if kind == "admitted":
        body.update(position=0, ahead=0, eta_seconds=0)
        if admission is None:
            admission = admitted_fields(
                settings, event.event_id, user_id, placement.place, placement.epoch
            )
        body.update(admission)
    elif kind == "waiting":
        ahead = placement.ahead
        body.update(position=ahead + 1, ahead=ahead)
        if figures.sold_out:
            body.update(status="sold_out", position=None, ahead=None)
        elif figures.presale_held:
            # Every seat of the presale's share is held or sold: the fan keeps the place,
            # for a seat of the share a lapsing hold frees or for the general sale.
            body.update(status="presale_sold_out", general_sale_at=_at(figures.general_sale_ms))
        elif figures.all_held:
            # Every seat left is in another fan's hold: the fan keeps the place, and may
            # still get in if holds expire or are released; no wait can be told.
            body["status"] = "all_held"
        elif figures.config.paused:
            body["status"] = "paused"
        else:
            body["eta_seconds"] = eta_seconds(ahead + 1, figures.pace_per_minute)
    return body


@functools.lru_cache(maxsize=1024)
def _at(ms: int) -> str:
    # From whole ms, no float: the record's time to the ms. Once, not for every status.
    return rfc3339(datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000))
