"""``POST /booking/reserve``: validate, check an admitted fan's session with the queue,
send the reserve to a booking worker, and tell the queue what the fan now holds."""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from ticketing.api import Api, Ok, Problems
from ticketing.api.common import (
    BAD_REQUEST,
    RATE_LIMITED,
    RETRY_AFTER,
    TOO_LARGE,
    UNAUTHORIZED,
)
from ticketing.auth import require_user
from ticketing.messages import Reserve
from ticketing.problems import RETRY_AFTER_SECONDS, Problem, backend_unavailable
from ticketing.web import SETTINGS_KEY
from waitingroom.booking.commands import RPC_KEY, request_id_of, respond, roles_of
from waitingroom.booking.inputs import ADMISSION_TOKEN, IDEMPOTENCY_KEY, ReserveRequest
from waitingroom.booking.refusals import BOOKING_UNAVAILABLE
from waitingroom.booking.shapes import Hold, LimitExceeded, ReserveConflict
from waitingroom.queue.port import QUEUE_PORT_KEY, QUEUE_UNREACHABLE, Admission, verify_admission

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.booking_routes")

# How long an admitted fan told 409 tickets_unavailable keeps the turn to ask again.
CLAIM_GRACE_SECONDS = 15.0

RESERVE_API = Api()


@RESERVE_API.post(
    "/booking/reserve",
    summary="Hold tickets: chosen ones (all or nothing) or the best available",
    description="Once 201 is returned nobody else can hold or buy these tickets until "
    "expires_at. Counts against the per-user cap per event (held plus booked, "
    "TICKETING_MAX_TICKETS_PER_USER).",
    body=ReserveRequest,
    headers=[ADMISSION_TOKEN, IDEMPOTENCY_KEY],
    auth=require_user,
    replies=[
        Ok(201, "The hold", shape=Hold),
        BAD_REQUEST,
        UNAUTHORIZED,
        Problems(
            403,
            "no X-Admission-Token though the event's queue is enabled (admission_required); "
            "or the token is malformed, expired, or for another user or event, or its "
            "session ended: booked, left, sold out, or no seats held within the claim window "
            "(admission_invalid). A session the waiting room lost with Redis's state did not "
            "end: a token issued before the loss gets it back (until the token's exp, with a "
            "fresh claim window).",
            codes=("admission_required", "admission_invalid"),
        ),
        Problems(404, "no such event", codes=("event_not_found",)),
        Problems(
            409,
            "some tickets are held or sold, unavailable_ticket_ids names them, nothing was "
            "held (tickets_unavailable); or it is before the event's on_sale_at, which "
            "on_sale_at says, for every event, with or without a waiting room (not_on_sale); "
            "or the event's registered presale has sold its share of the seats, seats_left "
            "says how many it has left (presale_sold_out): the general sale follows",
            codes=("tickets_unavailable", "not_on_sale", "presale_sold_out"),
            extra=ReserveConflict,
        ),
        TOO_LARGE,
        Problems(
            422,
            "the per-user cap for this event would be exceeded",
            codes=("limit_exceeded",),
            extra=LimitExceeded,
        ),
        RATE_LIMITED,
        Problems(
            503,
            f"{BOOKING_UNAVAILABLE.description} Or an X-Admission-Token came and Redis (the "
            "waiting room's sessions) is not reachable: nothing was sent, retry after "
            "Retry-After.",
            codes=("backend_unavailable",),
            headers=RETRY_AFTER,
        ),
    ],
)
async def reserve(request: web.Request, body: ReserveRequest) -> web.Response:
    started = time.perf_counter()
    try:
        return await _reserve(request, body)
    finally:
        # Timed for the queue's auto mode here, not in a middleware: no other request pays
        # for it. Refusals before any work (401, 400) are not the booking path's latency.
        queue = request.app.get(QUEUE_PORT_KEY)
        if queue is not None:
            queue.reserve_took(time.perf_counter() - started)


async def _reserve(request: web.Request, body: ReserveRequest) -> web.Response:
    principal = require_user(request)
    event_id = body.event_id
    request_id = request_id_of(request, principal, "reserve")
    token = request.headers.get("X-Admission-Token")
    admitted = False
    refused: Problem | None = None
    if token is not None:
        settings = request.app[SETTINGS_KEY]
        admission = verify_admission(settings, token, principal.user_id, event_id)
        try:
            await _check_session(request, principal.user_id, event_id, admission)
            admitted = True
        except Problem as problem:
            if problem.status != 403 or "Idempotency-Key" not in request.headers:
                raise
            # The admission is over, but this may be the retry of a reserve the worker
            # applied after the front door stopped waiting for it (503): then the hold is
            # the fan's and its 201 is answered again, or those seats would be nobody's
            # until the hold expired. The worker answers the stored reply of the same key,
            # or refuses without acting (and stores the refusal, so a copy still on its way
            # cannot hold seats later). Not so for a queue that cannot tell (503): a stored
            # refusal would then answer the fan's retry after Redis is back.
            refused = problem
    command = Reserve(
        request_id=request_id,
        user_id=principal.user_id,
        roles=roles_of(principal),
        admitted=None if refused is not None else admitted,
        replay_only=refused is not None,
        event_id=event_id,
        ticket_ids=body.seats(),
        quantity=body.quantity,
        section=body.section,
    )
    reply = await request.app[RPC_KEY].call(command, event_id)
    status, answer = reply.status, reply.body
    if refused is not None and status == 403 and (answer or {}).get("code") == "admission_invalid":
        raise refused  # nothing was applied: the front door's own reason
    queue = request.app.get(QUEUE_PORT_KEY)
    if status == 201 and queue is not None and isinstance(answer, dict):
        queue.remember_hold(str(answer.get("hold_id")), event_id)
    if status == 201 and admitted and isinstance(answer, dict):
        await _claimed(request, principal.user_id, event_id, answer)
    elif status == 409 and admitted and (answer or {}).get("code") == "tickets_unavailable":
        await _hurry(request, principal.user_id, event_id)
    return respond(reply)


async def _hurry(request: web.Request, user_id: str, event_id: int) -> None:
    """Too few seats for what the fan asked: they have CLAIM_GRACE_SECONDS to ask again
    (for fewer), after which their turn goes to the next fan (the queue's HURRY_CLAIM).
    Best effort, like :func:`_claimed`."""
    queue = request.app.get(QUEUE_PORT_KEY)
    if queue is None:
        return
    try:
        await queue.hurry_claim(event_id, user_id, int(CLAIM_GRACE_SECONDS * 1000))
    except QUEUE_UNREACHABLE as exc:
        log.warning("claim window not shortened: event_id=%s %s", event_id, exc)


async def _claimed(request: web.Request, user_id: str, event_id: int, hold: dict[str, Any]) -> None:
    """The admitted fan holds seats now: no longer "admitted, not yet holding", and the
    seats count as taken for admission at once, before the next inventory count (the
    queue's TICK). Best effort: without Redis the claim window may end the session of a
    fan who holds seats, whose hold still stands (confirm needs no admission)."""
    queue = request.app.get(QUEUE_PORT_KEY)
    tickets = hold.get("tickets")
    if queue is None or not isinstance(tickets, list):
        return
    try:
        await queue.claim(event_id, user_id, len(tickets))
    except QUEUE_UNREACHABLE as exc:
        log.warning("hold not recorded for admission: event_id=%s %s", event_id, exc)


async def _check_session(
    request: web.Request, user_id: str, event_id: int, admission: Admission
) -> None:
    """A valid token is not enough once its session ended (the fan booked or left, held
    no seats within the claim window, or the event sold out): the slot went to the next
    fan. But a session Redis lost (it restarted without the queue's state) did not end:
    the token names the queue epoch it was issued in, and a session missing from another
    epoch is given back (QueuePort.reserve_refusal). Without Redis nothing can tell, so the
    reserve is ``503 backend_unavailable`` at once and nothing goes to a worker: a token
    whose session ended must not hold seats just because the queue is briefly out of
    reach (the fan retries after Retry-After)."""
    queue = request.app.get(QUEUE_PORT_KEY)
    if queue is None:
        return
    # The reserve may take as long as the front door waits for it, and a retry comes a
    # Retry-After later, itself late when the fan's network or device is: the claim window
    # stays open twice that (with exactly that much, a full on-sale run still ended with
    # 144 holds whose fans had been sent back to the line, no payment tried).
    rpc_wait = request.app[SETTINGS_KEY].booking_rpc_timeout_seconds
    keep_ms = int(2 * (rpc_wait + int(RETRY_AFTER_SECONDS)) * 1000)
    # A token from before epochs were signed in asks exactly as it always did.
    lost = {} if admission.epoch is None else {"admitted_in": admission}
    try:
        refusal = await queue.reserve_refusal(event_id, user_id, keep_ms, **lost)
    except QUEUE_UNREACHABLE as exc:
        log.warning("reserve refused for event_id=%s: redis unavailable: %s", event_id, exc)
        raise backend_unavailable(
            "The waiting room cannot confirm your admission right now; retry shortly."
        ) from exc
    if refusal is not None:
        raise Problem(403, "admission_invalid", refusal)
