"""The booking routes of the front door: authenticate, validate, send the command to a
booking worker and return its answer as it is."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from ticketing.auth import Principal, require_user
from ticketing.messages import (
    GET_BOOKING,
    LIST_BOOKINGS,
    RELEASE,
    RESERVE,
    TICKET_STATUS,
    booking_command,
)
from ticketing.problems import CONTENT_TYPE, RETRY_AFTER_SECONDS, Problem, validation_error
from ticketing.validation import MAX_ID, decode_cursor, query_int, read_json
from ticketing.web import SETTINGS_KEY
from waitingroom.admission import verify_admission
from waitingroom.booking_health import reserve_latency_recorded
from waitingroom.queue_runtime import QUEUE_KEY, recount_if_all_held
from waitingroom.rpc import BookingRpc

log = logging.getLogger(__name__)

RPC_KEY = web.AppKey("booking_rpc", BookingRpc)

MAX_TICKETS_PER_REQUEST = 100
# How long an admitted fan told 409 tickets_unavailable keeps the turn to ask again.
CLAIM_GRACE_SECONDS = 15.0
_RESERVE_FIELDS = frozenset({"event_id", "ticket_ids", "ticket_id", "quantity", "section"})


async def rpc_ctx(app: web.Application) -> AsyncIterator[None]:
    rpc = BookingRpc(app[SETTINGS_KEY])
    app[RPC_KEY] = rpc
    rpc.start()
    yield
    await rpc.close()


def request_id_of(request: web.Request, principal: Principal, route: str) -> str:
    """The idempotency key of this request: the same (user, Idempotency-Key, route) is the
    same command, so a retry is answered from the worker's stored reply."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return uuid.uuid4().hex
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise validation_error("Idempotency-Key must be 1 to 255 printable ASCII characters.")
    digest = hashlib.sha256("\0".join((principal.user_id, key, route)).encode()).hexdigest()
    return "idem:" + digest


async def send_command(
    request: web.Request, principal: Principal, kind: str, request_id: str, key: Any, **fields: Any
) -> web.Response:
    command = booking_command(
        kind, request_id, principal.user_id, roles=sorted(principal.roles), **fields
    )
    status, body = await request.app[RPC_KEY].call(command, key)
    return respond(status, body)


def respond(status: int, body: Any) -> web.Response:
    """A booking worker's answer as the fan's response."""
    if status == 204 or body is None:
        return web.Response(status=status)
    if status >= 400:
        headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
        return web.Response(
            status=status, body=orjson.dumps(body), content_type=CONTENT_TYPE, headers=headers
        )
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def reserve_fields(body: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - _RESERVE_FIELDS)
    if unknown:
        raise validation_error(f"Unknown fields: {', '.join(unknown)}.", fields=unknown)
    event_id = body.get("event_id")
    if not _is_int(event_id):
        raise validation_error("event_id must be an integer.", field="event_id")
    chosen = [name for name in ("ticket_ids", "ticket_id", "quantity") if name in body]
    if len(chosen) != 1:
        raise validation_error("Send exactly one of ticket_ids, ticket_id or quantity.")
    if "ticket_id" in body:
        body = {**body, "ticket_ids": [body["ticket_id"]]}
    if "ticket_ids" in body:
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
        return {"event_id": event_id, "ticket_ids": ids}
    quantity = body["quantity"]
    if not _is_int(quantity) or not 1 <= quantity <= MAX_TICKETS_PER_REQUEST:
        raise validation_error(
            f"quantity must be an integer from 1 to {MAX_TICKETS_PER_REQUEST}.", field="quantity"
        )
    fields: dict[str, Any] = {"event_id": event_id, "quantity": quantity}
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
    if token is not None:
        settings = request.app[SETTINGS_KEY]
        verify_admission(settings, token, principal.user_id, fields["event_id"])
        try:
            await _check_session(request, principal.user_id, fields["event_id"])
        except Problem as refused:
            if "Idempotency-Key" not in request.headers:
                raise
            return await _replay_reserve(request, principal, request_id, fields, refused)
        admitted = True
    command = booking_command(
        RESERVE,
        request_id,
        principal.user_id,
        roles=sorted(principal.roles),
        admitted=admitted,
        **fields,
    )
    status, body = await request.app[RPC_KEY].call(command, fields["event_id"])
    runtime = request.app.get(QUEUE_KEY)
    if status == 201 and runtime is not None and isinstance(body, dict):
        runtime.remember_hold(str(body.get("hold_id")), fields["event_id"])
    if status == 201 and admitted and isinstance(body, dict):
        await _claimed(request, principal.user_id, fields["event_id"], body)
    elif status == 409 and admitted and (body or {}).get("code") == "tickets_unavailable":
        await _hurry(request, principal.user_id, fields["event_id"])
    return respond(status, body)


async def _replay_reserve(
    request: web.Request,
    principal: Principal,
    request_id: str,
    fields: dict[str, Any],
    refused: Problem,
) -> web.Response:
    """The fan's admission is over, but this may be the retry of a reserve the worker applied
    after the front door stopped waiting for it (503): then the hold is the fan's and its
    201 is answered again, or those seats would be nobody's until the hold expired. The
    worker answers the stored reply of the same Idempotency-Key, or refuses without acting
    (and stores the refusal, so a copy still on its way cannot hold seats later)."""
    command = booking_command(
        RESERVE,
        request_id,
        principal.user_id,
        roles=sorted(principal.roles),
        replay_only=True,
        **fields,
    )
    status, body = await request.app[RPC_KEY].call(command, fields["event_id"])
    if status == 403 and (body or {}).get("code") == "admission_invalid":
        raise refused  # nothing was applied: the front door's own reason
    runtime = request.app.get(QUEUE_KEY)
    if status == 201 and runtime is not None and isinstance(body, dict):
        runtime.remember_hold(str(body.get("hold_id")), fields["event_id"])
    return respond(status, body)


async def _hurry(request: web.Request, user_id: str, event_id: int) -> None:
    """Too few seats for what the fan asked: they have CLAIM_GRACE_SECONDS to ask again
    (for fewer), after which their turn goes to the next fan (queue_scripts HURRY_CLAIM).
    Best effort, like :func:`_claimed`."""
    runtime = request.app.get(QUEUE_KEY)
    if runtime is None:
        return
    try:
        await runtime.store.hurry_claim(event_id, user_id, int(CLAIM_GRACE_SECONDS * 1000))
    except (RedisError, OSError) as exc:
        log.warning("claim window not shortened: event_id=%s %s", event_id, exc)


async def _claimed(request: web.Request, user_id: str, event_id: int, hold: dict) -> None:
    """The admitted fan holds seats now: no longer "admitted, not yet holding", and the
    seats count as taken for admission at once, before the next inventory count (see
    queue_scripts TICK). Best effort: without Redis the claim window may end the session
    of a fan who holds seats, whose hold still stands (confirm needs no admission)."""
    runtime = request.app.get(QUEUE_KEY)
    tickets = hold.get("tickets")
    if runtime is None or not isinstance(tickets, list):
        return
    try:
        await runtime.store.claim(event_id, user_id, len(tickets))
    except (RedisError, OSError) as exc:
        log.warning("hold not recorded for admission: event_id=%s %s", event_id, exc)


async def _check_session(request: web.Request, user_id: str, event_id: int) -> None:
    """A valid token is not enough once its session ended (the fan booked or left, held
    no seats within the claim window, or the event sold out): the slot went to the next
    fan. Without Redis the signed token alone decides, so a queue outage does not also
    stop the admitted fans from buying."""
    runtime = request.app.get(QUEUE_KEY)
    if runtime is None:
        return
    # The reserve may take as long as the front door waits for it, and a retry comes a
    # Retry-After later, itself late when the fan's network or device is: the claim window
    # stays open twice that (with exactly that much, a full on-sale run still ended with
    # 144 holds whose fans had been sent back to the line, no payment tried).
    rpc_wait = request.app[SETTINGS_KEY].booking_rpc_timeout_seconds
    keep_ms = int(2 * (rpc_wait + int(RETRY_AFTER_SECONDS)) * 1000)
    try:
        ends, claim_by = await runtime.store.session_for_reserve(event_id, user_id, keep_ms)
    except (RedisError, OSError) as exc:
        log.warning("session check skipped for event_id=%s: redis unavailable: %s", event_id, exc)
        return
    now_ms = time.time() * 1000
    if ends is None or ends <= now_ms:
        raise Problem(
            403,
            "admission_invalid",
            "Your session in the waiting room has ended; join the queue again.",
        )
    if claim_by is not None and claim_by <= now_ms:
        raise Problem(
            403,
            "admission_invalid",
            "Your turn passed: no seats were held within the claim window; join the queue again.",
        )


async def release_hold(request: web.Request) -> web.Response:
    principal = require_user(request)
    hold_id = uuid_or_404(request.match_info["hold_id"], "hold_not_found", "No such hold.")
    request_id = request_id_of(request, principal, "release:" + hold_id)
    response = await send_command(request, principal, RELEASE, request_id, hold_id, hold_id=hold_id)
    if response.status == 204:
        # Seats came back: if every seat left was held, admission may resume now.
        await recount_if_all_held(request.app, hold_id)
    return response


async def ticket_status(request: web.Request) -> web.Response:
    principal = require_user(request)
    raw = request.match_info["ticket_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not 1 <= int(raw) <= MAX_ID:
        raise Problem(404, "ticket_not_found", "No such ticket.")
    ticket_id = int(raw)
    return await send_command(
        request, principal, TICKET_STATUS, uuid.uuid4().hex, ticket_id, ticket_id=ticket_id
    )


async def get_booking(request: web.Request) -> web.Response:
    principal = require_user(request)
    booking_id = uuid_or_404(
        request.match_info["booking_id"], "booking_not_found", "No such booking."
    )
    return await send_command(
        request, principal, GET_BOOKING, uuid.uuid4().hex, booking_id, booking_id=booking_id
    )


async def my_bookings(request: web.Request) -> web.Response:
    principal = require_user(request)
    limit = query_int(request, "limit", 20, 1, 100)
    cursor = decode_cursor(request, (str, str))
    return await send_command(
        request,
        principal,
        LIST_BOOKINGS,
        uuid.uuid4().hex,
        principal.user_id,
        limit=limit,
        cursor=cursor,
    )


def uuid_or_404(raw: str, code: str, detail: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except ValueError as exc:
        raise Problem(404, code, detail) from exc


def booking_routes() -> list[web.RouteDef]:
    return [
        web.post("/booking/reserve", reserve_latency_recorded(reserve)),
        web.delete("/booking/holds/{hold_id}", release_hold),
        web.get("/booking/{ticket_id}", ticket_status),
        web.get("/bookings/{booking_id}", get_booking),
        web.get("/me/bookings", my_bookings),
    ]
