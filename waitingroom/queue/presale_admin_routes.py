"""A registered presale, for operators (role ``admin``): ``GET`` and ``PUT
/admin/queues/{event_id}/presale`` (its settings and figures: registrations, codes issued
and redeemed, seats taken, whether admission is held for a share all taken) and ``POST
/admin/queues/{event_id}/presale/draw``.

Making a presale commits to its draw's seed at once (the commitment is public from then
on); it can be changed until it is drawn, never after. The draw comes after registration
closes and before on-sale; drawing again answers the same draw."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from aiohttp import web

from ticketing.api import Api, Ok, Problems
from ticketing.api.common import BAD_REQUEST, RETRY_AFTER, TOO_LARGE
from ticketing.auth import require_admin
from ticketing.problems import Problem
from ticketing.validation import rfc3339
from waitingroom.queue.admin_routes import REFUSED
from waitingroom.queue.draw_record import DrawRecord
from waitingroom.queue.events import QueueEvent
from waitingroom.queue.presale_gate import presale_gate
from waitingroom.queue.presale_record import Presale, PresaleRecord, state_of
from waitingroom.queue.presale_routes import (
    PRESALE_NOT_FOUND,
    presale_or_404,
    record_reachable,
)
from waitingroom.queue.presale_shapes import PresaleAdmin, PresaleSettings
from waitingroom.queue.route_steps import (
    EVENT_ID,
    EVENT_NOT_FOUND,
    event_id_of,
    event_or_404,
    queue_reachable,
)
from waitingroom.queue.runtime import QUEUE_KEY, QueueRuntime

log = logging.getLogger(__name__)

PRESALE_ADMIN_API = Api()

DOWN = Problems(
    503,
    "the presale's record (PostgreSQL) or the queue (Redis) is not reachable, or the "
    "presale is being drawn or changed; retry after Retry-After",
    codes=("backend_unavailable",),
    headers=RETRY_AFTER,
)


async def presale_figures(
    runtime: QueueRuntime, record: PresaleRecord, presale: Presale, drawn: DrawRecord
) -> dict[str, Any]:
    with record_reachable():
        counts = await record.counts(presale.event_id)
        inventory = await runtime.events.count_one(presale.event_id)
        now = await record.now()
    with queue_reachable():
        held = (await runtime.figures.fresh(presale.event_id)).presale_held
    return {
        "event_id": presale.event_id,
        **presale.settings_json(),
        "state": state_of(presale, drawn, now),
        "registrations": counts.registrations,
        "codes_issued": counts.codes_issued,
        "codes_redeemed": counts.codes_redeemed,
        "seats_taken": inventory.reserved + inventory.booked,
        "admission_held": held,
        "commitment": drawn.commitment,
        "committed_at": rfc3339(drawn.committed_at),
        "seed": drawn.seed,
        "drawn_at": None if drawn.revealed_at is None else rfc3339(drawn.revealed_at),
    }


async def _answer(
    runtime: QueueRuntime, record: PresaleRecord, presale: Presale, status: int = 200
) -> web.Response:
    with record_reachable():
        drawn = await record.draws.get(presale.event_id)
    if drawn is None:
        raise RuntimeError(f"event {presale.event_id}: a presale without its commitment")
    body = await presale_figures(runtime, record, presale, drawn)
    return web.json_response(body, status=status)


@PRESALE_ADMIN_API.get(
    "/admin/queues/{event_id}/presale",
    summary="The event's registered presale: settings, state, registrations, codes issued "
    "and redeemed, seats taken",
    path_ids=[EVENT_ID],
    auth=require_admin,
    replies=[Ok(200, "The presale", shape=PresaleAdmin), *REFUSED, PRESALE_NOT_FOUND, DOWN],
)
async def get_presale(request: web.Request) -> web.Response:
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    await event_or_404(runtime, event_id)
    record = presale_gate(runtime).record
    return await _answer(runtime, record, await presale_or_404(record, event_id))


def _invalid(field: str, message: str) -> Problem:
    return Problem(
        400,
        "validation_error",
        f"{field}: {message}",
        errors=[{"in": "body", "name": field, "message": message}],
        field=field,
    )


def _check(event: QueueEvent, body: PresaleSettings, seats_total: int) -> None:
    on_sale: datetime = event.on_sale_at
    if body.registration_closes_at <= body.registration_opens_at:
        raise _invalid("registration_closes_at", "must be after registration_opens_at")
    if body.registration_closes_at > on_sale:
        raise _invalid(
            "registration_closes_at",
            f"must not be after the event's on_sale_at ({event.on_sale_text}): the draw "
            "comes before the presale opens",
        )
    if body.general_sale_at <= on_sale:
        raise _invalid(
            "general_sale_at", f"must be after the event's on_sale_at ({event.on_sale_text})"
        )
    if body.seats > seats_total:
        raise _invalid("seats", f"must not be more than the event's {seats_total} seats")


@PRESALE_ADMIN_API.route(
    "PUT",
    "/admin/queues/{event_id}/presale",
    summary="Make the event's registered presale (committing to its draw's seed) or change "
    "it until it is drawn",
    description="Registration runs from registration_opens_at to registration_closes_at "
    "(at or before on_sale_at); the draw (POST .../presale/draw) then issues codes; from "
    "on_sale_at until general_sale_at the event's queue admits only fans with their code "
    "and holds and sales stop at seats; then the general sale follows in the same queue. "
    "A presale is made only before on-sale and while the pre-queue is empty (every fan in "
    "it must have a code).",
    path_ids=[EVENT_ID],
    auth=require_admin,
    body=PresaleSettings,
    replies=[
        Ok(201, "Made", shape=PresaleAdmin),
        Ok(200, "Changed", shape=PresaleAdmin),
        BAD_REQUEST,
        *REFUSED,
        EVENT_NOT_FOUND,
        Problems(
            409,
            "drawn already: it stays as drawn (presale_drawn); the event is on sale "
            "(presale_too_late); fans are in the pre-queue without codes "
            "(presale_queue_not_empty): nothing changed",
            codes=("presale_drawn", "presale_too_late", "presale_queue_not_empty"),
        ),
        TOO_LARGE,
        DOWN,
    ],
)
async def put_presale(request: web.Request, body: PresaleSettings) -> web.Response:
    principal = require_admin(request)
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    event = await event_or_404(runtime, event_id)
    gate = presale_gate(runtime)
    record = gate.record
    with record_reachable():
        existing = await record.get(event_id)
        inventory = await runtime.events.count_one(event_id)
    _check(event, body, inventory.available + inventory.reserved + inventory.booked)
    if existing is None:
        with record_reachable():
            now = await record.now()
        if now >= event.on_sale_at:
            raise Problem(
                409,
                "presale_too_late",
                "The event is on sale: a presale comes before it.",
                on_sale_at=event.on_sale_text,
            )
        with queue_reachable():
            waiting = await runtime.store.redis.zcard(runtime.store.key(event_id, "pre"))
        if waiting:
            raise Problem(
                409,
                "presale_queue_not_empty",
                f"{waiting} fans are in the pre-queue without presale codes; a presale is "
                "made before anyone joins.",
            )
    fields = body.model_dump()
    with queue_reachable():
        await gate.forget(event_id)
    with record_reachable():
        presale, made, _ = await record.save(event_id, fields, principal.user_id)
    with queue_reachable():
        await gate.publish(event_id, presale)
    log.info(
        "presale %s: event_id=%s by=%s %s",
        "made" if made else "changed",
        event_id,
        principal.user_id,
        presale.settings_json(),
    )
    return await _answer(runtime, record, presale, 201 if made else 200)


@PRESALE_ADMIN_API.post(
    "/admin/queues/{event_id}/presale/draw",
    summary="Draw the presale's registrants and issue the first codes of the order a "
    "presale code each (drawing again answers the same draw)",
    description="Once registration has closed. The seed committed to when the presale was "
    "made is revealed; anyone can recompute the order from GET "
    "/queue/{event_id}/presale/draw.",
    path_ids=[EVENT_ID],
    auth=require_admin,
    replies=[
        Ok(200, "Drawn", shape=PresaleAdmin),
        *REFUSED,
        PRESALE_NOT_FOUND,
        Problems(
            409,
            "registration is still open (registration_open, with registration_closes_at): "
            "nothing was drawn",
            codes=("registration_open",),
        ),
        DOWN,
    ],
)
async def draw_presale(request: web.Request) -> web.Response:
    principal = require_admin(request)
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    await event_or_404(runtime, event_id)
    record = presale_gate(runtime).record
    presale = await presale_or_404(record, event_id)
    with record_reachable():
        drawn = await record.draw(event_id)
    log.info(
        "presale drawn: event_id=%s by=%s registrants=%s codes=%s",
        event_id,
        principal.user_id,
        drawn.total,
        presale.codes,
    )
    return await _answer(runtime, record, presale)
