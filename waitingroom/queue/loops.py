"""The waiting room's loops in one process.

``queue_ctx`` (a cleanup context, after Redis and the PostgreSQL pool) builds the
:class:`~waitingroom.queue.runtime.QueueRuntime` and the booking front door's port, runs
the admitter (every 0.2 s), the once-a-second work (the controller under its lease, with
the operators' settings written back where Redis lost them, the event snapshot, every
queue's figures and gauges, this process's reserve latency report) and the pub/sub
listener, and on shutdown closes the sockets and stops the loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from ticketing.dependencies import POSTGRES_ERRORS, REDIS_ERRORS
from ticketing.lifecycle import wait_any
from ticketing.metrics import DEPENDENCY_ERRORS
from ticketing.redis_connect import connect_redis
from ticketing.web import DEPENDENCY_TIMEOUT_SECONDS, PG_POOL_KEY, SETTINGS_KEY
from waitingroom.queue.admitter import TICK_SECONDS, Admitter
from waitingroom.queue.booking_health import (
    RESERVE_LATENCY_KEY,
    BrokerBacklog,
    LatencyReports,
    ReserveLatency,
)
from waitingroom.queue.challenge_auto import DoorSteering
from waitingroom.queue.controller import QueueController
from waitingroom.queue.draw import FairStart
from waitingroom.queue.draw_record import FairnessRecord
from waitingroom.queue.events import QueueEvent, QueueEvents
from waitingroom.queue.hub import Hub
from waitingroom.queue.metrics import (
    ACTIVE_SESSIONS,
    ADMIT_RATE,
    MAX_ACTIVE,
    PAUSED,
    QUEUE_LENGTH,
    SEATS,
)
from waitingroom.queue.port import QUEUE_PORT_KEY, QueuePort
from waitingroom.queue.runtime import QUEUE_KEY, ROLE_KEY, QueueRuntime
from waitingroom.queue.series import SERIES_KEY, QueueSeries
from waitingroom.queue.status import FiguresCache
from waitingroom.queue.store import QueueStore
from waitingroom.queue.store_config import NOTHING_SET, SETTINGS_RECORD_KEY, SettingsRecord

# The name these lines logged under before the rooms split (queue_runtime): read as they did.
log = logging.getLogger("waitingroom.queue_runtime")

REDIS_CONNECTIONS = 256
# The inventory count's beat. A sale that changes what is left (a confirm, a release, a late
# payment's webhook) asks for a count of its event at once (recount_if_all_held).
COUNT_SECONDS = 1.0


async def queue_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    # A client of the queue's own whose pool waits for a free connection: under a surge
    # hundreds of joins are in flight at once, more than the shared client's pool (100,
    # which fails the call beyond that) holds. (A cluster's pools cannot wait, but hold
    # this many per node: a surge's joins spread over the primaries.)
    redis = connect_redis(
        settings.redis_url,
        timeout=DEPENDENCY_TIMEOUT_SECONDS,
        max_connections=REDIS_CONNECTIONS,
        wait_for_connection=True,
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
    latency = app[RESERVE_LATENCY_KEY] = ReserveLatency()
    app[QUEUE_PORT_KEY] = QueuePort(runtime, latency)
    series = app[SERIES_KEY] = QueueSeries(store)
    record = app[SETTINGS_RECORD_KEY] = SettingsRecord(app[PG_POOL_KEY])
    door = DoorSteering(runtime)  # the challenge's automatic mode

    async def count_and_record() -> None:
        # Whoever counts this second writes back the operators' settings Redis lost (TICK
        # admits nobody in a queue until then) and samples every queue for the charts. The
        # samples carry the beat's time, not the time the writing got to them: a slow
        # restore must not squeeze one second's sample against the next.
        beat_ms = int(time.time() * 1000)
        if await runtime.controller.run_once():
            await restore_settings(store, record, [event.event_id for event in events.all()])
            await series.record(events.all(), at_ms=beat_ms)
            await door.run_once(event.event_id for event in events.all())

    front_door_only = app.get(ROLE_KEY) == "booking"

    async def figures_and_reports() -> None:
        await events.refresh()
        await latency_reports.report(latency)  # auto mode steers by the reserves' latency
        if front_door_only:
            return  # no sockets to tell, no figures to show
        for event in events.all():
            await refresh_figures(runtime, event.event_id)
            set_seat_gauges(event)

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
    for deferred in runtime.deferred_ends:  # each a session that expires on its own
        deferred.cancel()
    await asyncio.gather(*tasks, *runtime.deferred_ends, return_exceptions=True)
    await runtime.admitter.close()
    await runtime.controller.close()
    await runtime.hub.close()
    await backlog.close()
    await redis.aclose()


async def restore_settings(
    store: QueueStore, record: SettingsRecord, event_ids: list[int]
) -> list[int]:
    """Bring each queue's copy of the operators' settings in Redis up to the record in
    PostgreSQL: where Redis lost it (a restart without its data), where a PATCH's Redis
    write failed after the record, and, with version 0, for a queue nobody set (its copy
    then says "the defaults", which TICK needs to admit anyone). One round trip to Redis
    and one query a second for all the queues, in the process that counts; a write only
    where needed. Returns the events whose settings on record came back."""
    if not event_ids:
        return []
    held = await store.config_versions(event_ids)
    on_record = await record.load(event_ids)
    restored = []
    for event_id in event_ids:
        stored = on_record.get(event_id, NOTHING_SET)
        version = held[event_id]
        if version is not None and version >= stored.version:
            continue  # the copy is the record's
        if not await store.write_config(event_id, stored) or not stored.fields:
            continue
        restored.append(event_id)
        log.warning(
            "queue settings written back from the record: event_id=%s version=%s %s",
            event_id,
            stored.version,
            dict(stored.fields),
        )
        # Sockets hear it now, not at their turn: a paused queue is told it is paused.
        paused = stored.fields.get("paused") is True
        await store.publish(event_id, "paused" if paused else "config")
    return restored


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
    PAUSED.labels(label).set(1 if figures.config.paused else 0)
    MAX_ACTIVE.labels(label).set(figures.config.max_active)


def set_seat_gauges(event: QueueEvent) -> None:
    if event.inventory is None:
        return  # not counted yet
    label = str(event.event_id)
    SEATS.labels(label, "available").set(event.inventory.available)
    SEATS.labels(label, "reserved").set(event.inventory.reserved)
    SEATS.labels(label, "booked").set(event.inventory.booked)


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
        beat = seconds * random.uniform(1 - jitter, 1 + jitter)  # noqa: S311 - jitter, no secret
        await wait_any(stop, seconds=max(0.0, beat - (loop.time() - started)))
