"""Operators' queue controls (role ``admin``): ``GET /admin/queues`` (every queue with its
figures, for the console), ``GET`` and ``PATCH /admin/queues/{event_id}``.

Settings live in Redis and every admitter tick and status reads them there, so a PATCH is
in force in every process within a tick (0.2 s); pauses and resumes are also announced
over pub/sub so the fans' pages hear of them at once.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ticketing.auth import require_admin
from ticketing.domain.queue import InvalidQueueSetting, apply_patch, auto_start_rate
from ticketing.problems import validation_error
from ticketing.validation import query_int, read_json
from waitingroom.queue.events import QueueEvent
from waitingroom.queue.route_steps import event_id_of, event_or_404, queue_reachable
from waitingroom.queue.runtime import QUEUE_KEY, QueueRuntime
from waitingroom.queue.series import SERIES_KEY, WINDOW_MS

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.queue_admin")


async def queue_figures(runtime: QueueRuntime, event: QueueEvent) -> dict[str, Any]:
    figures = await runtime.figures.fresh(event.event_id)
    return {
        "event_id": event.event_id,
        **figures.config.to_json(),
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


async def list_queues(request: web.Request) -> web.Response:
    require_admin(request)
    runtime = request.app[QUEUE_KEY]
    with queue_reachable():
        items = [await queue_figures(runtime, event) for event in runtime.events.all()]
        health = await runtime.controller.last_health()
    return web.json_response({"items": items, "booking_health": health})


async def get_queue(request: web.Request) -> web.Response:
    require_admin(request)
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    event = await event_or_404(runtime, event_id)
    with queue_reachable():
        return web.json_response(await queue_figures(runtime, event))


async def patch_queue(request: web.Request) -> web.Response:
    principal = require_admin(request)
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    body = await read_json(request)
    event = await event_or_404(runtime, event_id)
    store = runtime.store
    with queue_reachable():
        before = (await store.figures(event_id)).config
        try:
            after = apply_patch(before, body)
        except InvalidQueueSetting as exc:
            raise validation_error(str(exc), field=exc.field) from exc
        # Only the fields sent: two operators changing different fields both win.
        await store.save_config(event_id, after, fields=body.keys())
        if after.mode == "auto" and before.mode != "auto":
            await store.set_state(event_id, auto_rate=auto_start_rate(after.admit_per_minute))
        if after.paused != before.paused:
            await store.publish(event_id, "paused" if after.paused else "resumed")
        elif after != before:
            await store.publish(event_id, "config")
        log.info(
            "queue settings: event_id=%s by=%s %s", event_id, principal.user_id, after.to_json()
        )
        return web.json_response(await queue_figures(runtime, event))


async def queue_series(request: web.Request) -> web.Response:
    """The queue's last 15 minutes, a sample a second (``waitingroom/queue/series.py``);
    ``?since_ms=`` only the samples after that (the console asks for what is new)."""
    require_admin(request)
    event_id = event_id_of(request)
    since_ms = query_int(request, "since_ms", 0, 0, 2**53)
    runtime = request.app[QUEUE_KEY]
    await event_or_404(runtime, event_id)
    with queue_reachable():
        samples = await request.app[SERIES_KEY].read(event_id, since_ms)
    return web.json_response(
        {"event_id": event_id, "window_seconds": WINDOW_MS // 1000, "samples": samples}
    )


def queue_admin_routes() -> list[web.RouteDef]:
    return [
        web.get("/admin/queues", list_queues),
        web.get("/admin/queues/{event_id}", get_queue),
        web.patch("/admin/queues/{event_id}", patch_queue),
        web.get("/admin/queues/{event_id}/series", queue_series),
    ]
