"""Operators' queue controls (role ``admin``): ``GET /admin/queues`` (every queue with its
figures, for the console), ``GET`` and ``PATCH /admin/queues/{event_id}``.

A PATCH records the settings in PostgreSQL first (``queue_settings``), then copies them
into Redis, where every admitter tick and status reads them, so it is in force in every
process within a tick (0.2 s); pauses and resumes are also announced over pub/sub so the
fans' pages hear of them at once. The record is what a Redis restart without its data
cannot take: the copy is written back from it (``waitingroom.queue.store_config``).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ticketing.api import Api, Ok
from ticketing.api.common import BAD_REQUEST, FORBIDDEN, RATE_LIMITED, TOO_LARGE, UNAUTHORIZED
from ticketing.auth import require_admin
from ticketing.dependencies import POSTGRES_ERRORS
from ticketing.domain.queue import auto_start_rate
from ticketing.problems import backend_unavailable
from waitingroom.queue.admin_shapes import (
    QueueClusters,
    QueueFigures,
    QueueList,
    QueuePatch,
    QueueSeries,
    QueueSeriesQuery,
)
from waitingroom.queue.challenge_routes import door_difficulty
from waitingroom.queue.events import QueueEvent
from waitingroom.queue.route_steps import (
    EVENT_ID,
    EVENT_NOT_FOUND,
    QUEUE_DOWN,
    event_id_of,
    event_or_404,
    queue_reachable,
)
from waitingroom.queue.runtime import QUEUE_KEY, QueueRuntime
from waitingroom.queue.series import SERIES_KEY, WINDOW_MS
from waitingroom.queue.signals_admin import apply_rule, clusters_body, rule_of
from waitingroom.queue.store_config import SETTINGS_RECORD_KEY, StoredSettings

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.queue_admin")

ADMIN_QUEUE_API = Api()
# Every operator's route: the admin role, and the generic per-client rate limit.
REFUSED = (UNAUTHORIZED, FORBIDDEN, RATE_LIMITED)


async def queue_figures(runtime: QueueRuntime, event: QueueEvent) -> dict[str, Any]:
    figures = await runtime.figures.fresh(event.event_id)
    return {
        "event_id": event.event_id,
        **figures.config.to_json(),
        **(await rule_of(runtime, event.event_id)).to_json(),
        "effective_challenge_difficulty": await door_difficulty(
            runtime, event.event_id, figures.config
        ),
        "waiting": figures.waiting,
        "active": figures.active,
        "admitted_total": figures.admitted_total,
        "name": event.name,
        "on_sale_at": event.on_sale_text,
        "pre_queue": figures.pre_queue,
        "drawn": figures.drawn,
        "sold_out": figures.sold_out,
        "all_held": figures.all_held,
        "unclaimed": figures.unclaimed,
        "seats_per_fan": figures.seats_per_fan,
        "effective_admit_per_minute": round(figures.effective_per_minute, 1),
        "measured_admit_per_minute": round(figures.measured_per_minute, 1),
        "inventory": None if event.inventory is None else event.inventory.to_json(),
    }


@ADMIN_QUEUE_API.get(
    "/admin/queues",
    summary="Every queue-enabled event with its queue figures (the console's list)",
    auth=require_admin,
    replies=[Ok(200, "The queues", shape=QueueList), *REFUSED, QUEUE_DOWN],
)
async def list_queues(request: web.Request) -> web.Response:
    runtime = request.app[QUEUE_KEY]
    with queue_reachable():
        items = [await queue_figures(runtime, event) for event in runtime.events.all()]
        health = await runtime.controller.last_health()
    return web.json_response({"items": items, "booking_health": health})


@ADMIN_QUEUE_API.get(
    "/admin/queues/{event_id}",
    summary="One queue's settings and figures",
    path_ids=[EVENT_ID],
    auth=require_admin,
    replies=[Ok(200, "The queue", shape=QueueFigures), *REFUSED, EVENT_NOT_FOUND, QUEUE_DOWN],
)
async def get_queue(request: web.Request) -> web.Response:
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    event = await event_or_404(runtime, event_id)
    with queue_reachable():
        return web.json_response(await queue_figures(runtime, event))


@ADMIN_QUEUE_API.patch(
    "/admin/queues/{event_id}",
    summary="Change a queue's settings (any of them); in force in every process within 2 s",
    description="mode auto steers the rate (up to admit_per_minute) from the booking backlog, "
    "reserve latency and remaining seats; challenge_auto raises challenge_difficulty while "
    "the door is under a spike.",
    path_ids=[EVENT_ID],
    auth=require_admin,
    body=QueuePatch,
    replies=[
        Ok(200, "The queue as changed", shape=QueueFigures),
        BAD_REQUEST,
        *REFUSED,
        EVENT_NOT_FOUND,
        TOO_LARGE,
        QUEUE_DOWN,
    ],
)
async def patch_queue(request: web.Request, body: QueuePatch) -> web.Response:
    principal = require_admin(request)
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    event = await event_or_404(runtime, event_id)
    store = runtime.store
    changes = body.changes()
    with queue_reachable():
        before = (await store.figures(event_id)).config
        rule_before = await rule_of(runtime, event_id)
    # On record first: PostgreSQL failing answers 503 with Redis unchanged.
    stored = await record_settings(request, event_id, changes, principal.user_id)
    with queue_reachable():
        if stored is not None:
            # Then the copy the admitters read, all of the record at once (Redis may have
            # lost the rest). Redis failing here is a 503 too; the record stands, and the
            # once-a-second restore brings the copy up to it.
            await store.write_config(event_id, stored)
        # As now in force (a copy Redis had lost comes back whole with this write).
        after = (await store.figures(event_id)).config
        if after.mode == "auto" and before.mode != "auto":
            await store.set_state(event_id, auto_rate=auto_start_rate(after.admit_per_minute))
        if before.challenge_auto and not after.challenge_auto:
            await store.set_challenge_level(event_id, 0)  # a later auto mode starts afresh
        if after.paused != before.paused:
            await store.publish(event_id, "paused" if after.paused else "resumed")
        elif after != before:
            await store.publish(event_id, "config")
        await apply_rule(runtime, event, rule_before)  # back_of_line: clusters moved now
        log.info(
            "queue settings: event_id=%s by=%s %s", event_id, principal.user_id, after.to_json()
        )
        return web.json_response(await queue_figures(runtime, event))


async def record_settings(
    request: web.Request, event_id: int, changes: dict[str, Any], by: str
) -> StoredSettings | None:
    """Record the fields sent (only those: two operators changing different fields both
    win) and answer the whole record; None when nothing was sent. PostgreSQL failing is
    the fast ``503 backend_unavailable``."""
    if not changes:
        return None
    try:
        return await request.app[SETTINGS_RECORD_KEY].save(event_id, changes, by)
    except POSTGRES_ERRORS as exc:
        raise backend_unavailable(
            "The queue settings' record is not reachable; retry shortly."
        ) from exc


@ADMIN_QUEUE_API.get(
    "/admin/queues/{event_id}/series",
    summary="A queue's last 15 minutes, a sample a second, for the console's charts: waiting, "
    "active, the admission rate, seats held and sold per second, seats left",
    path_ids=[EVENT_ID],
    auth=require_admin,
    query=QueueSeriesQuery,
    replies=[
        Ok(200, "The samples", shape=QueueSeries),
        BAD_REQUEST,
        *REFUSED,
        EVENT_NOT_FOUND,
        QUEUE_DOWN,
    ],
)
async def queue_series(request: web.Request, query: QueueSeriesQuery) -> web.Response:
    """The queue's last 15 minutes, a sample a second (``waitingroom/queue/series.py``);
    ``?since_ms=`` only the samples after that (the console asks for what is new)."""
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    await event_or_404(runtime, event_id)
    with queue_reachable():
        samples = await request.app[SERIES_KEY].read(event_id, query.since_ms)
    return web.json_response(
        {"event_id": event_id, "window_seconds": WINDOW_MS // 1000, "samples": samples}
    )


@ADMIN_QUEUE_API.get(
    "/admin/queues/{event_id}/clusters",
    summary="One person, one place: the event's clusters of accounts that look like one "
    "actor's (address blocks and devices with more than cluster_threshold accounts, cards "
    "paid with by more than one), its cluster_rule and how many fans it moved",
    path_ids=[EVENT_ID],
    auth=require_admin,
    replies=[Ok(200, "The clusters", shape=QueueClusters), *REFUSED, EVENT_NOT_FOUND, QUEUE_DOWN],
)
async def queue_clusters(request: web.Request) -> web.Response:
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    event = await event_or_404(runtime, event_id)
    with queue_reachable():
        return web.json_response(await clusters_body(runtime, event))
