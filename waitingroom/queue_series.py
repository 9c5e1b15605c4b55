"""Each queue's last 15 minutes, a sample a second, for the charts of the operators'
console (``GET /admin/queues/{event_id}/series``).

Right after the once-a-second inventory count, the process that took that second's lease
(``queue_runtime``) writes one sample per queue-enabled event into a sorted set under the
event's hash tag, scored by its time in ms, trimmed to the window and given a TTL: the
queue's figures (waiting, pre-queue, active, admitted so far, the admission rate in force
and the one measured) and the count it has just made (seats available, held, booked).

Seats held per second are counted where holds are made: every ``201`` of
``POST /booking/reserve`` adds its seats to this process's tally (in memory, so a reserve
waits for no extra Redis call), and every process adds its tally to the event's counter
in Redis once a second. Not the difference of the held count between samples: that count
is net of the holds that expired, were released or were paid meanwhile, so in an on-sale
with churn it hides most of the holds made. (A ``201`` answered again from the worker's
stored reply, to a retry with the same Idempotency-Key, counts twice: rare, never low.)

Seats sold per second are the difference of the booked count between samples: it has every
booked seat, those a confirm books and those a late payment's webhook books, and none
twice. A refund lowers it; a rate below zero is drawn as zero.

Both rates are averaged over the last 5 s: processes add their tallies and the lease moves
between processes at their own beats, so a single second's difference jitters.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass

import orjson
from aiohttp import web

from ticketing.dependencies import REDIS_ERRORS
from waitingroom.queue_events import QueueEvent
from waitingroom.queue_store import QueueStore

log = logging.getLogger(__name__)

WINDOW_MS = 15 * 60 * 1000  # 900 samples at one a second
MAX_SAMPLES = 1200  # a hard cap, should the lease ever move faster than once a second
RATE_SPAN_MS = 5000
SERIES_TTL_SECONDS = WINDOW_MS // 1000 + 60
COUNTER_TTL_SECONDS = 3600  # a quiet event's counter goes; a restart of it reads as 0/s


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
    seats_held_total: int  # seats in 201 reserves so far (the counter, see above)

    def pack(self) -> bytes:
        return orjson.dumps(list(asdict(self).values()))

    @classmethod
    def unpack(cls, raw: bytes | str) -> Sample:
        return cls(*orjson.loads(raw))


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
        self._held: Counter[int] = Counter()  # this process's seats held since its last flush

    def series_key(self, event_id: int) -> str:
        return self.store.key(event_id, "series")

    def held_key(self, event_id: int) -> str:
        return self.store.key(event_id, "series:held")

    # --- every process ----------------------------------------------------------------

    def count_hold(self, body: bytes) -> None:
        """Tally a 201 reserve's seats (its body is the Hold)."""
        try:
            hold = orjson.loads(body)
            self._held[int(hold["event_id"])] += len(hold["tickets"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            # A chart never fails a hold that was made.
            log.warning("seats held not counted: the 201 body is not a hold")

    async def flush(self) -> None:
        """Add this process's tally to the events' counters in Redis."""
        if not self._held:
            return
        tally, self._held = self._held, Counter()
        pipe = self.store.redis.pipeline(transaction=False)
        for event_id, seats in tally.items():
            pipe.incrby(self.held_key(event_id), seats)
            pipe.expire(self.held_key(event_id), COUNTER_TTL_SECONDS)
        try:
            await pipe.execute()
        except REDIS_ERRORS:
            self._held.update(tally)  # next second, then
            raise

    # --- the process that counted this second --------------------------------------------

    async def record(self, events: Iterable[QueueEvent]) -> int:
        """Write one sample per counted event; how many were written."""
        counted = [e for e in events if e.inventory is not None]
        if not counted:
            return 0
        redis = self.store.redis
        pipe = redis.pipeline(transaction=False)
        for event in counted:
            pipe.get(self.held_key(event.event_id))
        held_totals = await pipe.execute()
        every_figures = await asyncio.gather(*(self.store.figures(e.event_id) for e in counted))
        now_ms = int(time.time() * 1000)
        pipe = redis.pipeline(transaction=False)
        for event, held, figures in zip(counted, held_totals, every_figures, strict=True):
            inventory = event.inventory
            assert inventory is not None
            sample = Sample(
                at_ms=now_ms,
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
            )
            key = self.series_key(event.event_id)
            pipe.zadd(key, {sample.pack(): now_ms})
            pipe.zremrangebyscore(key, "-inf", now_ms - WINDOW_MS)
            pipe.zremrangebyrank(key, 0, -MAX_SAMPLES - 1)
            pipe.expire(key, SERIES_TTL_SECONDS)
        await pipe.execute()
        return len(counted)

    # --- the operators' route -----------------------------------------------------------

    async def read(self, event_id: int, since_ms: int = 0) -> list[dict[str, object]]:
        """The window's samples after ``since_ms``, oldest first, with their rates."""
        start = max(since_ms - 2 * RATE_SPAN_MS, int(time.time() * 1000) - WINDOW_MS)
        raw = await self.store.redis.zrangebyscore(self.series_key(event_id), start, "+inf")
        return with_rates([Sample.unpack(r) for r in raw], since_ms)


SERIES_KEY = web.AppKey("queue_series", QueueSeries)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def holds_counted(handler: Handler) -> Handler:
    """``POST /booking/reserve`` with its 201s' seats tallied for the charts."""

    @functools.wraps(handler)
    async def counted(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        series = request.app.get(SERIES_KEY)
        if response.status == 201 and series is not None and isinstance(response, web.Response):
            body = response.body
            if isinstance(body, bytes):
                series.count_hold(body)
        return response

    return counted
