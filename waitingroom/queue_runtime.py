"""The waiting room's parts in one process, and the loops that keep them going.

``queue_ctx`` (a cleanup context, after Redis and the PostgreSQL pool) builds them, runs
the admitter (every 0.2 s), the once-a-second work (the controller under its lease, the
event snapshot, every queue's figures and gauges, this process's reserve latency report)
and the pub/sub listener, and on shutdown closes the sockets and stops the loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis

from ticketing.config import Settings
from ticketing.dependencies import POSTGRES_ERRORS, REDIS_ERRORS
from ticketing.lifecycle import wait_any
from ticketing.metrics import DEPENDENCY_ERRORS
from ticketing.problems import Problem, backend_unavailable, unavailable_on
from ticketing.ratelimit import client_address
from ticketing.web import DEPENDENCY_TIMEOUT_SECONDS, PG_POOL_KEY, SETTINGS_KEY
from waitingroom.admitter import TICK_SECONDS, Admitter
from waitingroom.booking_health import RESERVE_LATENCY_KEY, BrokerBacklog, LatencyReports
from waitingroom.fair_start import FairStart
from waitingroom.fairness_record import FairnessRecord
from waitingroom.queue_controller import QueueController
from waitingroom.queue_events import QueueEvent, QueueEvents
from waitingroom.queue_hub import Hub
from waitingroom.queue_metrics import ACTIVE_SESSIONS, ADMIT_RATE, QUEUE_LENGTH
from waitingroom.queue_series import SERIES_KEY, QueueSeries
from waitingroom.queue_status import FiguresCache
from waitingroom.queue_store import Placement, QueueStore, RateLimited

log = logging.getLogger(__name__)

REDIS_CONNECTIONS = 256


@dataclass
class QueueRuntime:
    settings: Settings
    store: QueueStore
    events: QueueEvents
    figures: FiguresCache
    hub: Hub
    admitter: Admitter
    controller: QueueController
    # The event of each hold this process answered a 201 reserve for, so the confirm that
    # follows (usually through the same front door) need not ask PostgreSQL: that lookup
    # was a fifth of a front door's work in an on-sale. Bounded; a miss asks PostgreSQL.
    hold_events: dict[str, int] = field(default_factory=dict)

    def remember_hold(self, hold_id: str, event_id: int) -> None:
        if len(self.hold_events) >= HOLD_EVENTS_KEPT:
            self.hold_events.clear()
        self.hold_events[hold_id] = event_id

    async def event_of_hold(self, hold_id: str, *, done: bool = False) -> int | None:
        """The hold's event (None: no such hold); ``done``: it will not be asked again."""
        event_id = self.hold_events.pop(hold_id, None) if done else self.hold_events.get(hold_id)
        if event_id is None:
            event_id = await self.events.pool.fetchval(
                "SELECT event_id FROM holds WHERE id = $1::uuid", hold_id
            )
        return event_id

    async def event_or_404(self, event_id: int) -> QueueEvent:
        try:
            event = await self.events.get(event_id)
        except POSTGRES_ERRORS as exc:
            raise backend_unavailable("The event catalog is not reachable; retry shortly.") from exc
        if event is None:
            raise Problem(404, "event_not_found", "No such event with a waiting room.")
        return event

    async def arrive(
        self,
        request: web.Request,
        event: QueueEvent,
        user_id: str,
        *,
        join: bool,
        restore: tuple[str, int, str] | None = None,
    ) -> Placement:
        """Where the fan stands (joining them first with ``join``), counted against the
        fan's and the address's queue limits (429 when either refuses)."""
        address = client_address(request)
        with queue_reachable():
            try:
                return await self.store.place(
                    event.event_id,
                    user_id,
                    join=join,
                    on_sale_ms=event.on_sale_ms,
                    restore=restore,
                    address=address,
                )
            except RateLimited as limited:
                raise Problem(
                    429,
                    "rate_limited",
                    "Too many queue requests; the websocket pushes your place, no need to poll "
                    "this fast.",
                    headers={"Retry-After": str(limited.retry_after_seconds)},
                ) from None

    async def placement_or_404(
        self, request: web.Request, event: QueueEvent, user_id: str, detail: str
    ) -> Placement:
        """Where this fan stands now (without joining), or 404 not_in_queue."""
        placement = await self.arrive(request, event, user_id, join=False)
        if placement.kind == "none":
            raise Problem(404, "not_in_queue", detail)
        return placement


HOLD_EVENTS_KEPT = 100_000

QUEUE_KEY = web.AppKey("queue_runtime", QueueRuntime)
# "all" or "booking" (a booking front door: the queue's state, none of its loops).
ROLE_KEY = web.AppKey("waitingroom_role", str)
# The inventory count's beat. A sale that changes what is left (a confirm, a release, a late
# payment's webhook) asks for a count of its event at once (recount_if_all_held).
COUNT_SECONDS = 1.0


async def recount_if_all_held(
    app: web.Application, hold_id: str | None = None, event_id: int | None = None
) -> None:
    """After a confirm or a release (of ``hold_id``, or in ``event_id``): when every seat
    left in its queued event was held (or it was sold out), that may just have changed
    (nothing left at all, or seats back): count the event again at once rather than at
    the next second. Best effort: the once-a-second count catches it anyway."""
    runtime = app.get(QUEUE_KEY)
    if runtime is None:
        return
    try:
        if event_id is None:
            event_id = await runtime.event_of_hold(str(hold_id))
        if event_id is None or await runtime.events.get(event_id) is None:
            return
        if await runtime.store.nothing_free(event_id):
            runtime.controller.recount(event_id)
    except (*REDIS_ERRORS, *POSTGRES_ERRORS) as exc:
        log.warning("queue recount not asked: event_id=%s %s", event_id, exc)


def queue_reachable() -> contextlib.AbstractContextManager[None]:
    """Redis failing inside is the fan's ``503 backend_unavailable``, with Retry-After."""
    return unavailable_on(REDIS_ERRORS, "The queue is not reachable; retry shortly.")


async def queue_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    # A client of the queue's own whose pool waits for a free connection: under a surge
    # hundreds of joins are in flight at once, more than the shared client's pool (100,
    # which fails the call beyond that) holds.
    redis = Redis.from_pool(  # the client owns the pool: closing it closes the connections
        BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=REDIS_CONNECTIONS,
            timeout=DEPENDENCY_TIMEOUT_SECONDS,
            socket_connect_timeout=DEPENDENCY_TIMEOUT_SECONDS,
            socket_timeout=DEPENDENCY_TIMEOUT_SECONDS,
        )
    )
    process = secrets.token_hex(6)
    store = QueueStore(redis, settings)
    # The gateway runs PLACE by its SHA (deploy/lua/queue_join.lua): load it now, so its
    # first joins need not come here for the waitingroom to load it (Redis down at start:
    # the first join through here loads it as before).
    with contextlib.suppress(*REDIS_ERRORS):
        await store.load_place()
    events = QueueEvents(redis, settings.redis_prefix, app[PG_POOL_KEY])
    figures = FiguresCache(store)
    backlog = BrokerBacklog(settings.amqp_url, settings.booking_partitions)
    latency_reports = LatencyReports(redis, settings.redis_prefix, process)
    runtime = QueueRuntime(
        settings=settings,
        store=store,
        events=events,
        figures=figures,
        hub=Hub(store, settings, figures, events),
        admitter=Admitter(store, events, FairStart(store, FairnessRecord(app[PG_POOL_KEY]))),
        controller=QueueController(store, events, settings, backlog, latency_reports, process),
    )
    app[QUEUE_KEY] = runtime
    series = app[SERIES_KEY] = QueueSeries(store)

    async def count_and_record() -> None:
        # Whoever counts this second samples every queue for the console's charts.
        if await runtime.controller.run_once():
            await series.record(events.all())

    latency = app[RESERVE_LATENCY_KEY]

    front_door_only = app.get(ROLE_KEY) == "booking"

    async def figures_and_reports() -> None:
        await events.refresh()
        await latency_reports.report(latency)  # auto mode steers by the reserves' latency
        if front_door_only:
            return  # no sockets to tell, no figures to show
        for event in events.all():
            await refresh_figures(runtime, event.event_id)

    stop = asyncio.Event()
    tasks = [asyncio.create_task(periodic("queue figures", 1.0, figures_and_reports, stop))]
    if not front_door_only:
        # Separate loops: PostgreSQL down stops the counting, not the queue.
        tasks += [
            asyncio.create_task(
                periodic("admitter", TICK_SECONDS, runtime.admitter.tick, stop, jitter=0.25)
            ),
            asyncio.create_task(periodic("queue counting", COUNT_SECONDS, count_and_record, stop)),
            asyncio.create_task(runtime.hub.listen(stop)),
        ]

    async def close_sockets(_: web.Application) -> None:
        stop.set()
        await runtime.hub.close()

    app.on_shutdown.append(close_sockets)
    yield
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await runtime.admitter.close()
    await runtime.controller.close()
    await runtime.hub.close()
    await backlog.close()
    await redis.aclose()


async def refresh_figures(runtime: QueueRuntime, event_id: int) -> None:
    figures = await runtime.figures.refresh(event_id)
    if not figures.drawn:
        # Not drawn yet, or no longer (the state was lost, perhaps with fans already back
        # from their queue tickets): from on-sale the admitter draws again, or puts the
        # recorded draw back.
        runtime.admitter.forget(event_id)
    label = str(event_id)
    QUEUE_LENGTH.labels(label, "waiting").set(figures.waiting)
    QUEUE_LENGTH.labels(label, "pre_queue").set(figures.pre_queue)
    ACTIVE_SESSIONS.labels(label).set(figures.active)
    ADMIT_RATE.labels(label, "effective").set(figures.effective_per_minute)
    ADMIT_RATE.labels(label, "measured").set(figures.measured_per_minute)


async def periodic(
    what: str,
    seconds: float,
    step: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    jitter: float = 0.0,
) -> None:
    """Run ``step`` every ``seconds`` (give or take ``jitter`` of it, at random) until
    ``stop``; a dependency down is logged (once a minute at most) and retried on the next
    beat, a bug is logged with its traceback."""
    last_warning = -math.inf
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        try:
            await step()
        except (*REDIS_ERRORS, *POSTGRES_ERRORS) as exc:
            dependency = "redis" if isinstance(exc, REDIS_ERRORS) else "postgres"
            DEPENDENCY_ERRORS.labels("waitingroom", dependency).inc()
            if started - last_warning > 60:
                log.warning("%s: %s unavailable: %s", what, dependency, exc)
                last_warning = started
        except Exception:
            log.exception("%s failed", what)
        # Jitter keeps processes started together from ticking in lockstep, where the one
        # always just ahead would find the shared bucket full and the other always empty.
        beat = seconds * random.uniform(1 - jitter, 1 + jitter)
        await wait_any(stop, seconds=max(0.0, beat - (loop.time() - started)))
