"""``POST /booking/reserve``: validate, check an admitted fan's session with the queue,
send the reserve to a booking worker, and tell the queue what the fan now holds."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NotRequired, TypedDict

from aiohttp import web

from ticketing.auth import require_user
from ticketing.messages import Reserve
from ticketing.problems import RETRY_AFTER_SECONDS, Problem, validation_error
from ticketing.validation import MAX_ID, read_json
from ticketing.web import SETTINGS_KEY
from waitingroom.booking.commands import RPC_KEY, request_id_of, respond, roles_of
from waitingroom.queue.port import QUEUE_PORT_KEY, QUEUE_UNREACHABLE, verify_admission

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.booking_routes")

MAX_TICKETS_PER_REQUEST = 100
# How long an admitted fan told 409 tickets_unavailable keeps the turn to ask again.
CLAIM_GRACE_SECONDS = 15.0
_RESERVE_FIELDS = frozenset({"event_id", "ticket_ids", "ticket_id", "quantity", "section"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SeatsAsked(TypedDict):
    """A valid reserve body, as the Reserve command's own fields: seats by id, or a
    quantity (in a section)."""

    event_id: int
    ticket_ids: NotRequired[tuple[int, ...]]
    quantity: NotRequired[int]
    section: NotRequired[str]


def reserve_latency_recorded(handler: Handler) -> Handler:
    """The reserve route's handler, timed for the queue's auto mode (a wrapper, not a
    middleware: every other request would pay for the check)."""

    @functools.wraps(handler)
    async def timed(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            queue = request.app.get(QUEUE_PORT_KEY)
            if queue is not None:
                queue.reserve_took(time.perf_counter() - started)

    return timed


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def reserve_fields(body: dict[str, Any]) -> SeatsAsked:
    unknown = sorted(set(body) - _RESERVE_FIELDS)
    if unknown:
        raise validation_error(f"Unknown fields: {', '.join(unknown)}.", fields=unknown)
    if not _is_int(body.get("event_id")):
        raise validation_error("event_id must be an integer.", field="event_id")
    event_id: int = body["event_id"]
    chosen = [name for name in ("ticket_ids", "ticket_id", "quantity") if name in body]
    if len(chosen) != 1:
        raise validation_error("Send exactly one of ticket_ids, ticket_id or quantity.")
    if "ticket_id" in body:
        body = {**body, "ticket_ids": [body["ticket_id"]]}
    if "ticket_ids" in body:
        return {"event_id": event_id, "ticket_ids": _ticket_ids(body)}
    return _quantity_fields(body, event_id)


def _ticket_ids(body: dict[str, Any]) -> tuple[int, ...]:
    ids = body["ticket_ids"]
    if (
        not isinstance(ids, list)
        or not 1 <= len(ids) <= MAX_TICKETS_PER_REQUEST
        or not all(_is_int(i) and 1 <= i <= MAX_ID for i in ids)
    ):
        raise validation_error(
            f"ticket_ids must be a list of 1 to {MAX_TICKETS_PER_REQUEST} ticket ids.",
            field="ticket_ids",
        )
    if len(set(ids)) != len(ids):
        raise validation_error("ticket_ids must not repeat a ticket.", field="ticket_ids")
    if "section" in body:
        raise validation_error("section goes with quantity, not ticket_ids.", field="section")
    return tuple(ids)


def _quantity_fields(body: dict[str, Any], event_id: int) -> SeatsAsked:
    quantity = body["quantity"]
    if not _is_int(quantity) or not 1 <= quantity <= MAX_TICKETS_PER_REQUEST:
        raise validation_error(
            f"quantity must be an integer from 1 to {MAX_TICKETS_PER_REQUEST}.", field="quantity"
        )
    fields: SeatsAsked = {"event_id": event_id, "quantity": quantity}
    section = body.get("section")
    if section is not None:
        if not isinstance(section, str) or not 1 <= len(section) <= 100:
            raise validation_error("section must be a section name.", field="section")
        fields["section"] = section
    return fields


async def reserve(request: web.Request) -> web.Response:
    principal = require_user(request)
    fields = reserve_fields(await read_json(request))
    request_id = request_id_of(request, principal, "reserve")
    token = request.headers.get("X-Admission-Token")
    admitted = False
    refused: Problem | None = None
    if token is not None:
        settings = request.app[SETTINGS_KEY]
        verify_admission(settings, token, principal.user_id, fields["event_id"])
        try:
            await _check_session(request, principal.user_id, fields["event_id"])
            admitted = True
        except Problem as problem:
            if "Idempotency-Key" not in request.headers:
                raise
            # The admission is over, but this may be the retry of a reserve the worker
            # applied after the front door stopped waiting for it (503): then the hold is
            # the fan's and its 201 is answered again, or those seats would be nobody's
            # until the hold expired. The worker answers the stored reply of the same key,
            # or refuses without acting (and stores the refusal, so a copy still on its way
            # cannot hold seats later).
            refused = problem
    command = Reserve(
        request_id=request_id,
        user_id=principal.user_id,
        roles=roles_of(principal),
        admitted=None if refused is not None else admitted,
        replay_only=refused is not None,
        **fields,
    )
    reply = await request.app[RPC_KEY].call(command, fields["event_id"])
    status, body = reply.status, reply.body
    if refused is not None and status == 403 and (body or {}).get("code") == "admission_invalid":
        raise refused  # nothing was applied: the front door's own reason
    queue = request.app.get(QUEUE_PORT_KEY)
    if status == 201 and queue is not None and isinstance(body, dict):
        queue.remember_hold(str(body.get("hold_id")), fields["event_id"])
    if status == 201 and admitted and isinstance(body, dict):
        await _claimed(request, principal.user_id, fields["event_id"], body)
    elif status == 409 and admitted and (body or {}).get("code") == "tickets_unavailable":
        await _hurry(request, principal.user_id, fields["event_id"])
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


async def _check_session(request: web.Request, user_id: str, event_id: int) -> None:
    """A valid token is not enough once its session ended (the fan booked or left, held
    no seats within the claim window, or the event sold out): the slot went to the next
    fan. Without Redis the signed token alone decides, so a queue outage does not also
    stop the admitted fans from buying."""
    queue = request.app.get(QUEUE_PORT_KEY)
    if queue is None:
        return
    # The reserve may take as long as the front door waits for it, and a retry comes a
    # Retry-After later, itself late when the fan's network or device is: the claim window
    # stays open twice that (with exactly that much, a full on-sale run still ended with
    # 144 holds whose fans had been sent back to the line, no payment tried).
    rpc_wait = request.app[SETTINGS_KEY].booking_rpc_timeout_seconds
    keep_ms = int(2 * (rpc_wait + int(RETRY_AFTER_SECONDS)) * 1000)
    try:
        refusal = await queue.reserve_refusal(event_id, user_id, keep_ms)
    except QUEUE_UNREACHABLE as exc:
        log.warning("session check skipped for event_id=%s: redis unavailable: %s", event_id, exc)
        return
    if refusal is not None:
        raise Problem(403, "admission_invalid", refusal)
