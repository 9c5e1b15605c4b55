"""The fans' queue routes: join, status and leave (the fair start's record is
:mod:`waitingroom.queue.fairness_routes`)."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from ticketing.api import Api, Empty, Ok, Operation, Problems, read_body
from ticketing.api.common import RATE_LIMITED, TOO_LARGE, UNAUTHORIZED
from ticketing.api.shapes import ValidationProblem
from ticketing.auth import require_user
from ticketing.dependencies import POSTGRES_ERRORS
from waitingroom.queue.events import QueueEvent
from waitingroom.queue.metrics import ESTIMATED_WAIT, JOINS
from waitingroom.queue.presale_gate import JOIN_REFUSED, presale_gate
from waitingroom.queue.presale_shapes import QueueJoinBody
from waitingroom.queue.route_steps import (
    EVENT_ID,
    EVENT_NOT_FOUND,
    QUEUE_DOWN,
    QUEUE_LIMITED,
    arrive,
    event_id_of,
    event_or_404,
    placement_or_404,
    queue_reachable,
    serve,
)
from waitingroom.queue.runtime import QUEUE_KEY, QueueRuntime
from waitingroom.queue.session_end import end_session
from waitingroom.queue.shapes import QueueStatus
from waitingroom.queue.signals_join import (
    move_if_flagged,
    moved_in,
    pass_the_door,
    record_signals,
    set_device_cookie,
)
from waitingroom.queue.status import status_body
from waitingroom.queue.store import Placement
from waitingroom.queue.ticket import ADMITTED, issue_ticket, read_queue_ticket

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.queue_routes")

FAN_API = Api()

_JOIN_OUTCOMES = {0: "again", 1: "new", 2: "restored"}
_JOINS_BY: dict[tuple[int, str], Any] = {}


async def status_of(
    runtime: QueueRuntime, event: QueueEvent, user_id: str, placement: Placement
) -> dict[str, Any]:
    figures = await runtime.figures.get(event.event_id)
    ticket = issue_ticket(
        runtime.settings,
        event.event_id,
        user_id,
        placement.kind,
        placement.place,
        placement.epoch,
    )
    return status_body(runtime.settings, event, user_id, placement, figures, ticket)


JOINED = Ok(200, "Where the fan stands", shape=QueueStatus)


async def join(request: web.Request) -> web.Response:
    principal = require_user(request)
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    body = await read_body(request, QueueJoinBody) if request.body_exists else None
    event = await event_or_404(runtime, event_id)
    # The presale's code before the door: a join refused by either changes nothing.
    gate = presale_gate(runtime)
    presale = await gate.check(event_id, principal.user_id, body)
    altcha = body.altcha if body is not None else None
    # One person, one place (waitingroom/queue/signals_join.py): signals first, so a
    # flagged fan meets the harder door their cluster's rule asks for.
    arrival = await record_signals(request, runtime, event_id, principal.user_id, event.on_sale_ms)
    await pass_the_door(runtime, event_id, principal.user_id, altcha, arrival.signals)
    restore = session = None
    if body is not None and "queue_ticket" in body.model_fields_set:
        restore = read_queue_ticket(
            runtime.settings, body.queue_ticket, principal.user_id, event_id
        )
        if restore is not None and restore[0] == ADMITTED:
            session, restore = restore, None
        if restore is not None and await _draw_lost_since(runtime, event, restore):
            restore = await _drawn_restore(runtime, event_id, principal.user_id, restore)
    with queue_reachable():
        if time.time() * 1000 < event.on_sale_ms:
            # Committed before anyone is in the pre-queue, even for an event created moments
            # before its on-sale (the admitter commits within a second otherwise).
            await runtime.admitter.commit(event_id)
        restored = session is not None and await _session_restored(
            runtime, event_id, principal.user_id, session
        )
        placement = await arrive(
            request, runtime, event, principal.user_id, join=True, restore=restore
        )
        if restored and placement.kind == "admitted":
            placement = dataclasses.replace(placement, new=2)
        placement, moved = await move_if_flagged(
            runtime, event_id, principal.user_id, event.on_sale_ms, arrival, placement
        )
        answer = await status_of(runtime, event, principal.user_id, placement)
        if moved:
            answer["moved"] = "cluster"
    await gate.joined(presale, event_id, principal.user_id)
    outcome = "sold_out" if placement.kind == "sold_out" else _JOIN_OUTCOMES[placement.new]
    counted = _JOINS_BY.get((event_id, outcome))
    if counted is None:  # labels() validates and locks each time; once per event and outcome
        counted = _JOINS_BY[(event_id, outcome)] = JOINS.labels(str(event_id), outcome)
    counted.inc()
    if placement.new == 1 and answer["eta_seconds"] is not None:
        # The estimate the fan saw; compare with ticketing_queue_actual_wait_seconds.
        ESTIMATED_WAIT.observe(answer["eta_seconds"])
    if placement.new:
        # debug: under a surge a line per join would cost more than the join itself
        log.debug(
            "queue join: event_id=%s user=%s kind=%s restored=%s",
            event_id,
            principal.user_id,
            placement.kind,
            placement.new == 2,
        )
    response = _json(answer)
    set_device_cookie(request, response, arrival)
    return response


# Served as it is: its body is optional (a join may send none), so it reads it itself,
# after the fan's token and the event id, as it always has.
serve(
    FAN_API,
    join,
    Operation(
        "POST",
        "/queue/{event_id}/join",
        summary="Join the event's queue (joining again returns the same place)",
        description="Before on_sale_at fans enter the pre-queue, drawn into a random, "
        "auditable order at on-sale ahead of later arrivals, who are served first come, "
        "first served. With the queue_ticket of an earlier answer, a fan whose place the "
        "queue lost (Redis lost its state) gets it back; an admitted fan gets the admitted "
        "session back, until its original end, and is answered admitted with an admission "
        "token. A session that ended in the queue Redis still has (booked, left, unclaimed) "
        "is not given back. While the event's challenge_difficulty is above 0, every join "
        "carries a solved challenge (GET /queue/{event_id}/challenge) as altcha. From "
        "on_sale_at until its registered presale's general_sale_at (GET "
        "/queue/{event_id}/presale) a join carries the fan's own presale code as "
        "presale_code; the first join with it redeems it. A join "
        "records the fan's address block and device (the tq_device cookie its answer sets) "
        "for the event's one person, one place rule: under harder_challenge a flagged fan's "
        "join needs a harder challenge (the 403 names the cluster); under back_of_line "
        "their place is moved behind everyone in line, once, and the answer says "
        'moved: "cluster".',
        body=QueueJoinBody,
        path_ids=(EVENT_ID,),
        secured=True,
        replies=(
            JOINED,
            Problems(
                400,
                "malformed body, or a queue_ticket we did not sign or that expired",
                codes=("validation_error",),
                extra=ValidationProblem,
            ),
            UNAUTHORIZED,
            JOIN_REFUSED,
            EVENT_NOT_FOUND,
            TOO_LARGE,
            QUEUE_LIMITED,
            QUEUE_DOWN,
        ),
        extra={
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/QueueJoinBody"}}
                },
            }
        },
    ),
)


async def _session_restored(
    runtime: QueueRuntime, event_id: int, user_id: str, ticket: tuple[str, int, str]
) -> bool:
    """An admitted fan's queue ticket: their session back if Redis lost it since the ticket
    was issued (another epoch now), exactly as a reserve with their admission token gets it
    (KEEP_CLAIM); the join that follows then finds them admitted and answers the token. In
    the same epoch a session that is gone ended (booked, left, unclaimed, sold out) and the
    fan joins at the back like anyone else. The gateway hands such joins here (see
    deploy/lua/queue_join.lua)."""
    _, ends_ms, epoch = ticket
    restored = await runtime.store.restore_session(event_id, user_id, epoch, ends_ms)
    if restored:
        log.info(
            "queue session restored after redis lost it: event_id=%s user=%s via=join",
            event_id,
            user_id,
        )
    return restored


async def _draw_lost_since(
    runtime: QueueRuntime, event: QueueEvent, restore: tuple[str, int, str]
) -> bool:
    """A pre-queue ticket after on-sale from a queue state Redis no longer has (another
    epoch): only then can PLACE restore it, and only then is the draw record worth a query
    (the fans' page sends its stored ticket with every join): one HGET instead of two
    queries of PostgreSQL for every fan who comes back with one."""
    where, _, epoch = restore
    if where != "pre" or time.time() * 1000 < event.on_sale_ms:
        return False
    with queue_reachable():
        return await runtime.store.epoch(event.event_id) != epoch


async def _drawn_restore(
    runtime: QueueRuntime, event_id: int, user_id: str, restore: tuple[str, int, str]
) -> tuple[str, int, str]:
    """A pre-queue ticket brought back after the draw: the place the recorded draw gave its
    fan, should Redis have lost the queue (PLACE restores it only then). Without the record
    (PostgreSQL down, or the fan not in it) the ticket still puts them behind the drawn."""
    try:
        place = await runtime.admitter.fair_start.drawn_place(event_id, user_id)
    except POSTGRES_ERRORS as exc:
        log.warning("queue ticket: draw record unavailable: event_id=%s %s", event_id, exc)
        return restore
    return restore if place is None else ("waiting", place, restore[2])


def _json(body: dict[str, Any]) -> web.Response:
    # orjson: the stdlib encoder was a tenth of a join's CPU under a surge
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def status(request: web.Request) -> web.Response:
    principal = require_user(request)
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    event = await event_or_404(runtime, event_id)
    placement = await placement_or_404(
        request,
        runtime,
        event,
        principal.user_id,
        "You are not in this queue (or your session ended); join it.",
    )
    with queue_reachable():
        answer = await status_of(runtime, event, principal.user_id, placement)
        if await moved_in(runtime, event_id, principal.user_id):
            answer["moved"] = "cluster"
        return _json(answer)


# Served as it is, as join is: on the two hottest routes the handler's own first step is
# the authentication, with no wrapper around it.
serve(
    FAN_API,
    status,
    Operation(
        "GET",
        "/queue/{event_id}/status",
        summary="The fan's place (for clients that poll; polling or a websocket keeps the place)",
        path_ids=(EVENT_ID,),
        secured=True,
        replies=(
            JOINED,
            UNAUTHORIZED,
            Problems(
                404,
                "no such event, or the fan has not joined or their session ended",
                codes=("event_not_found", "not_in_queue"),
            ),
            QUEUE_LIMITED,
            QUEUE_DOWN,
        ),
    ),
)


@FAN_API.post(
    "/queue/{event_id}/leave",
    summary="Give up one's place, or end one's admitted session (the slot goes to the next "
    "fan). Idempotent.",
    path_ids=[EVENT_ID],
    auth=require_user,
    replies=[
        Empty(204, "Out of the queue"),
        UNAUTHORIZED,
        EVENT_NOT_FOUND,
        RATE_LIMITED,
        QUEUE_DOWN,
    ],
)
async def leave(request: web.Request) -> web.Response:
    """Give up one's place, or end one's admitted session so the next fan gets the slot."""
    principal = require_user(request)
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    await event_or_404(runtime, event_id)
    with queue_reachable():
        await end_session(runtime, event_id, principal.user_id, "left")
    return web.Response(status=204)
