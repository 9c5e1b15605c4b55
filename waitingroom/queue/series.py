"""Each queue's last 15 minutes, a sample a second, for the charts of the operators'
console (``GET /admin/queues/{event_id}/series``).

Right after the once-a-second inventory count, the process that took that second's lease
(``loops``) writes one sample per queue-enabled event into a sorted set under the
event's hash tag, scored by its time in ms, trimmed to the window and given a TTL: the
queue's figures (waiting, pre-queue, active, admitted so far, the admission rate in force
and the one measured) and the count it has just made (seats available, held, booked).

Seats held per second come from the seats held through the front door so far: the queue
state's ``hold_seats``, to which every ``201`` of ``POST /booking/reserve`` adds its seats
at once (``QueueStore.claim``; a queue-enabled event's reserves are all admitted ones), the
count admission uses too. Not the difference of the held count between samples: that count
is net of the holds that expired, were released or were paid meanwhile, so in an on-sale
with churn it hides most of the holds made. (A ``201`` answered again from the worker's
stored reply, to a retry with the same Idempotency-Key, counts twice: rare, never low.)

Seats sold per second are the difference of the booked count between samples: it has every
booked seat, those a confirm books and those a late payment's webhook books, and none
twice. A refund lowers it; a rate below zero is drawn as zero.

Both rates are averaged over the last 5 s: the lease moves between processes at their own
beats, so samples come 0.9 to 1.1 s apart and a single second's difference jitters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import cast

import orjson
from aiohttp import web

from waitingroom.queue.events import QueueEvent
from waitingroom.queue.store import QueueStore

WINDOW_MS = 15 * 60 * 1000  # 900 samples at one a second
MAX_SAMPLES = 1200  # a hard cap, should the lease ever move faster than once a second
RATE_SPAN_MS = 5000
SERIES_TTL_SECONDS = WINDOW_MS // 1000 + 60
# Queues read at once: the queue's Redis pool is the fans' too, so a console's samples of
# many events never take more than a few of its connections at a time.
FIGURES_AT_ONCE = 16


@dataclass(frozen=True, slots=True)
class Sample:
    at_ms: int
    waiting: int
    pre_queue: int
    active: int
    admitted_total: int
    effective_admit_per_minute: float
    measured_admit_per_minute: float
    available: int
    reserved: int
    booked: int
    seats_held_total: int  # seats in 201 reserves so far (hold_seats, see above)
    unclaimed: int = 0  # admitted fans holding no seats yet (later field: a default)

    def pack(self) -> bytes:
        return orjson.dumps(list(asdict(self).values()))

    @classmethod
    def unpack(cls, raw: bytes | str) -> Sample:
        return cls(*orjson.loads(raw))  # samples written before a field was added lack it


def with_rates(samples: list[Sample], since_ms: int = 0) -> list[dict[str, object]]:
    """The samples after ``since_ms`` as JSON, each with seats held and sold per second over
    the last RATE_SPAN_MS (null where no earlier sample is at hand)."""
    out: list[dict[str, object]] = []
    base = 0  # the latest sample at least RATE_SPAN_MS older than the current one
    for i, sample in enumerate(samples):
        while base + 1 < i and samples[base + 1].at_ms <= sample.at_ms - RATE_SPAN_MS:
            base += 1
        if sample.at_ms <= since_ms:
            continue
        held: float | None = None
        sold: float | None = None
        if base < i:
            earlier = samples[base]
            seconds = (sample.at_ms - earlier.at_ms) / 1000
            held = round(max(0, sample.seats_held_total - earlier.seats_held_total) / seconds, 2)
            sold = round(max(0, sample.booked - earlier.booked) / seconds, 2)
        out.append({**asdict(sample), "seats_held_per_second": held, "seats_sold_per_second": sold})
    return out


class QueueSeries:
    def __init__(self, store: QueueStore) -> None:
        self.store = store

    def series_key(self, event_id: int) -> str:
        return self.store.key(event_id, "series")

    async def record(self, events: Iterable[QueueEvent], at_ms: int) -> int:
        """Write one sample per counted event, taken at ``at_ms``; how many were written."""
        counted = [e for e in events if e.inventory is not None]
        if not counted:
            return 0
        redis = self.store.redis
        pipe = redis.pipeline(transaction=False)
        for event in counted:
            pipe.hget(self.store.key(event.event_id, "state"), "hold_seats")
        held_totals = await pipe.execute()
        every_figures = []
        for start in range(0, len(counted), FIGURES_AT_ONCE):
            batch = counted[start : start + FIGURES_AT_ONCE]
            every_figures += await asyncio.gather(*(self.store.figures(e.event_id) for e in batch))
        pipe = redis.pipeline(transaction=False)
        for event, held, figures in zip(counted, held_totals, every_figures, strict=True):
            inventory = event.inventory
            if inventory is None:  # counted holds only the events with one
                raise RuntimeError(f"event {event.event_id} has no inventory")
            sample = Sample(
                at_ms=at_ms,
                waiting=figures.waiting,
                pre_queue=figures.pre_queue,
                active=figures.active,
                admitted_total=figures.admitted_total,
                effective_admit_per_minute=round(figures.effective_per_minute, 1),
                measured_admit_per_minute=round(figures.measured_per_minute, 1),
                available=inventory.available,
                reserved=inventory.reserved,
                booked=inventory.booked,
                seats_held_total=int(held or 0),
                unclaimed=figures.unclaimed,
            )
            key = self.series_key(event.event_id)
            pipe.zadd(key, {sample.pack(): at_ms})
            pipe.zremrangebyscore(key, "-inf", at_ms - WINDOW_MS)
            pipe.zremrangebyrank(key, 0, -MAX_SAMPLES - 1)
            pipe.expire(key, SERIES_TTL_SECONDS)
        await pipe.execute()
        return len(counted)

    async def read(self, event_id: int, since_ms: int = 0) -> list[dict[str, object]]:
        """The window's samples after ``since_ms``, oldest first, with their rates."""
        start = max(since_ms - 2 * RATE_SPAN_MS, int(time.time() * 1000) - WINDOW_MS)
        raw = await self.store.redis.zrangebyscore(self.series_key(event_id), start, "+inf")
        # Members only (no scores asked): each one a packed sample.
        return with_rates([Sample.unpack(cast("bytes", r)) for r in raw], since_ms)


SERIES_KEY = web.AppKey("queue_series", QueueSeries)
