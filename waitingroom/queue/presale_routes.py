"""A registered presale, for fans: ``GET /queue/{event_id}/presale`` (the presale and,
signed in, where the fan stands in it, their code once drawn), ``POST
/queue/{event_id}/presale/registration`` (register, idempotent) and ``GET
/queue/{event_id}/presale/draw`` (the draw's public record, as the pre-queue's fairness
record reads). The join's side is :mod:`waitingroom.queue.presale_gate`."""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from ticketing.api import Api, Ok, Operation, Problems, read_body
from ticketing.api.common import (
    BAD_REQUEST,
    RATE_LIMITED,
    RETRY_AFTER,
    TOO_LARGE,
    UNAUTHORIZED,
)
from ticketing.auth import Principal, optional_principal, require_user
from ticketing.dependencies import POSTGRES_ERRORS
from ticketing.problems import Problem, unavailable_on
from ticketing.validation import rfc3339
from waitingroom.queue.challenge_routes import pass_the_door
from waitingroom.queue.fairness_routes import ALGORITHM, _commitments, _draw
from waitingroom.queue.fairness_shapes import QueueFairnessQuery
from waitingroom.queue.presale_gate import presale_gate
from waitingroom.queue.presale_record import (
    Presale,
    PresaleRecord,
    no_presale,
    shown_code,
    state_of,
)
from waitingroom.queue.presale_shapes import (
    PresaleDraw,
    PresalePublic,
    PresaleRegistered,
    PresaleRegistrationBody,
)
from waitingroom.queue.route_steps import EVENT_ID, event_id_of, event_or_404, serve
from waitingroom.queue.runtime import QUEUE_KEY
from waitingroom.queue.shapes import ChallengeProblem

PRESALE_API = Api()

PRESALE_NOT_FOUND = Problems(
    404,
    "no such event, a malformed id, no waiting room (event_not_found), or no presale "
    "(presale_not_found)",
    codes=("event_not_found", "presale_not_found"),
)
RECORD_DOWN = Problems(
    503,
    "the presale's record (PostgreSQL) is not reachable; retry after Retry-After",
    codes=("backend_unavailable",),
    headers=RETRY_AFTER,
)


def record_reachable() -> contextlib.AbstractContextManager[None]:
    return unavailable_on(POSTGRES_ERRORS, "The presale's record is not reachable; retry shortly.")


async def presale_or_404(record: PresaleRecord, event_id: int) -> Presale:
    with record_reachable():
        presale = await record.get(event_id)
    if presale is None:
        raise no_presale()
    return presale


@PRESALE_API.get(
    "/queue/{event_id}/presale",
    summary="The event's registered presale: its window, where it stands and, with a bearer "
    "token, the caller's registration and presale code",
    description="Fans register while registration is open; when it closes the registrants "
    "are drawn (GET /queue/{event_id}/presale/draw) and the first codes of the order are "
    "issued a presale code, which only its own fan can use. From the event's on_sale_at "
    "until general_sale_at the queue admits only fans with their code (a join without one "
    "is 403 presale_code_required), and the presale sells at most seats seats; then the "
    "general sale follows in the same queue.",
    path_ids=[EVENT_ID],
    replies=[
        Ok(200, "The presale", shape=PresalePublic),
        PRESALE_NOT_FOUND,
        RATE_LIMITED,
        RECORD_DOWN,
    ],
)
async def get_presale(request: web.Request) -> web.Response:
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    event = await event_or_404(runtime, event_id)
    record = presale_gate(runtime).record
    presale = await presale_or_404(record, event_id)
    with record_reachable():
        drawn = await record.draws.get(event_id)
        counts = await record.counts(event_id)
        now = await record.now()
        if drawn is None:
            raise RuntimeError(f"event {event_id}: a presale without its commitment")
        body: dict[str, Any] = {
            "event_id": event_id,
            **{k: v for k, v in presale.settings_json().items()},
            "on_sale_at": event.on_sale_text,
            "state": state_of(presale, drawn, now),
            "registrations": counts.registrations,
            "commitment": drawn.commitment,
            "draw": f"/queue/{event_id}/presale/draw",
        }
        principal = _principal_or_none(request)
        if principal is not None:
            mine = await record.registration(event_id, principal.user_id)
            ref = record.member(event_id, principal.user_id)
            position = None
            if mine is not None and drawn.drawn:
                position = (await record.draws.positions(event_id, [ref])).get(ref)
            body["you"] = {
                "registered": mine is not None,
                "registered_at": None if mine is None else rfc3339(mine.registered_at),
                "member": ref,
                "drawn_position": position,
                "code": None if mine is None or mine.code is None else shown_code(mine.code),
                "redeemed": mine is not None and mine.redeemed_at is not None,
            }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def register(request: web.Request) -> web.Response:
    principal = require_user(request)
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    body = await read_body(request, PresaleRegistrationBody) if request.body_exists else None
    await event_or_404(runtime, event_id)
    record = presale_gate(runtime).record
    presale = await presale_or_404(record, event_id)
    with record_reachable():
        registration = await record.registration(event_id, principal.user_id)
        refusal = None if registration else await record.window_refusal(presale)
    if refusal is not None:
        raise refusal
    if registration is None:
        # A new registration passes the event's door, as a join does: each account a bot
        # farm registers costs it the same proof of work.
        altcha = None if body is None else body.altcha
        await pass_the_door(runtime, event_id, principal.user_id, altcha)
    with record_reachable():
        registration, made = await record.register(event_id, principal.user_id)
    answer = {
        "event_id": event_id,
        "registered_at": rfc3339(registration.registered_at),
        "member": record.member(event_id, principal.user_id),
        "registration_closes_at": rfc3339(presale.registration_closes_at),
    }
    return web.json_response(answer, status=201 if made else 200)


# Served as it is, as the join is: its body is optional.
serve(
    PRESALE_API,
    register,
    Operation(
        "POST",
        "/queue/{event_id}/presale/registration",
        summary="Register for the event's presale draw (registering again answers the same "
        "registration)",
        description="While the event's challenge_difficulty is above 0, a new registration "
        "carries a solved challenge (GET /queue/{event_id}/challenge) as altcha, as a join "
        "does.",
        body=PresaleRegistrationBody,
        path_ids=(EVENT_ID,),
        secured=True,
        replies=(
            Ok(201, "Registered", shape=PresaleRegistered),
            Ok(200, "Registered already: the same registration", shape=PresaleRegistered),
            BAD_REQUEST,
            UNAUTHORIZED,
            Problems(
                403,
                "the event's challenge is on and a new registration carried no solution "
                "(challenge_required), or a wrong, expired, used or another fan's one "
                "(challenge_failed): each with a fresh challenge; nothing was registered",
                codes=("challenge_required", "challenge_failed"),
                extra=ChallengeProblem,
            ),
            PRESALE_NOT_FOUND,
            TOO_LARGE,
            Problems(
                409,
                "registration has not opened (registration_not_open, with "
                "registration_opens_at) or has closed (registration_closed, with "
                "registration_closes_at): nothing was registered",
                codes=("registration_not_open", "registration_closed"),
            ),
            RATE_LIMITED,
            Problems(
                503,
                "the presale's record (PostgreSQL) or the queue (Redis) is not reachable; "
                "retry after Retry-After",
                codes=("backend_unavailable",),
                headers=RETRY_AFTER,
            ),
        ),
        extra={
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/PresaleRegistrationBody"}
                    }
                },
            }
        },
    ),
)


@PRESALE_API.get(
    "/queue/{event_id}/presale/draw",
    summary="The public record of the presale's draw (the pre-queue's record, of the "
    "registrants): the commitment at once, the seed and the order after the draw",
    description="The same algorithm and checks as GET /queue/{event_id}/fairness; the first "
    "codes of the order were issued presale codes. With a bearer token, also the caller's "
    "member id and drawn position.",
    query=QueueFairnessQuery,
    path_ids=[EVENT_ID],
    replies=[
        Ok(200, "The draw's record", shape=PresaleDraw),
        BAD_REQUEST,
        PRESALE_NOT_FOUND,
        RATE_LIMITED,
        RECORD_DOWN,
    ],
)
async def presale_draw(request: web.Request, query: QueueFairnessQuery) -> web.Response:
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    event = await event_or_404(runtime, event_id)
    record = presale_gate(runtime).record
    presale = await presale_or_404(record, event_id)
    with record_reachable():
        drawn = await record.draws.get(event_id)
        body: dict[str, Any] = {
            "event_id": event_id,
            "on_sale_at": event.on_sale_text,
            "algorithm": ALGORITHM,
            "codes": presale.codes,
            **await _commitments(record.draws, drawn),
            **await _draw(record.draws, drawn, query.offset, query.limit),
        }
        if body["next"] is not None:
            following = query.offset + query.limit
            body["next"] = f"/queue/{event_id}/presale/draw?offset={following}&limit={query.limit}"
        principal = _principal_or_none(request)
        if principal is not None:
            ref = record.member(event_id, principal.user_id)
            position = None
            if drawn is not None and drawn.drawn:
                position = (await record.draws.positions(event_id, [ref])).get(ref)
            body["you"] = {"member": ref, "drawn_position": position}
    return web.json_response(body)


def _principal_or_none(request: web.Request) -> Principal | None:
    try:
        return optional_principal(request)
    except Problem:
        return None
