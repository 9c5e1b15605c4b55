"""``POST /queue/{event_id}/ws-ticket``: a single-use ticket for opening the queue's
websocket, so that the access token never travels in a URL (where proxies and access logs
keep it). The page asks for one, with its bearer token, right before every (re)connect.

A ticket is a random string stored in Redis under the event's hash tag, with the fan's id,
for :data:`TICKET_TTL_SECONDS`; the handshake takes it out (GETDEL), so it opens one socket
at most."""

from __future__ import annotations

import secrets

import orjson
from aiohttp import web

from ticketing.api import Api, Ok, Problems
from ticketing.api.common import UNAUTHORIZED
from ticketing.auth import require_user
from ticketing.problems import Problem
from waitingroom.queue.route_steps import (
    EVENT_ID,
    QUEUE_DOWN,
    QUEUE_LIMITED,
    event_id_of,
    event_or_404,
    placement_or_404,
    queue_reachable,
)
from waitingroom.queue.runtime import QUEUE_KEY, QueueRuntime
from waitingroom.queue.shapes import SocketTicket

TICKET_API = Api()

# SPEC: valid 30 s, long enough for the connect that follows the fetch, too short to be
# worth stealing from a log. A constant, not a setting: nothing needs to tune it.
TICKET_TTL_SECONDS = 30
# token_urlsafe(32) is 43 characters; anything much longer is not one of ours, and is
# refused without asking Redis.
_TICKET_MAX_LENGTH = 64


def _key(runtime: QueueRuntime, event_id: int, ticket: str) -> str:
    return runtime.store.key(event_id, f"ws-ticket:{ticket}")


def invalid_ticket(detail: str) -> Problem:
    return Problem(401, "invalid_ticket", detail)


@TICKET_API.post(
    "/queue/{event_id}/ws-ticket",
    summary="A single-use ticket for opening the queue's websocket",
    description=f"Valid {TICKET_TTL_SECONDS} s, for one handshake of this fan's "
    "`GET /queue/{event_id}/ws?ticket=`, so the access token stays out of URLs. Ask for a "
    "new one before every (re)connect. Counted against the same per-fan and per-address "
    "limits as status.",
    path_ids=[EVENT_ID],
    auth=require_user,
    replies=[
        Ok(200, "The ticket", shape=SocketTicket),
        UNAUTHORIZED,
        Problems(
            404,
            "no such event, or the fan has not joined or their session ended",
            codes=("event_not_found", "not_in_queue"),
        ),
        QUEUE_LIMITED,
        QUEUE_DOWN,
    ],
)
async def mint(request: web.Request) -> web.Response:
    principal = require_user(request)
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    event = await event_or_404(runtime, event_id)
    await placement_or_404(
        request, runtime, event, principal.user_id, "Join the queue before opening its websocket."
    )
    ticket = secrets.token_urlsafe(32)
    record = orjson.dumps([event_id, principal.user_id])
    with queue_reachable():
        await runtime.store.redis.set(
            _key(runtime, event_id, ticket), record, ex=TICKET_TTL_SECONDS
        )
    return web.json_response({"ticket": ticket, "expires_in": TICKET_TTL_SECONDS})


async def redeem(runtime: QueueRuntime, event_id: int, ticket: str) -> str:
    """The id of the fan whose ticket this is, taking it out so it serves once; 401
    invalid_ticket for one that is unknown, expired, used or another event's."""
    if not ticket or len(ticket) > _TICKET_MAX_LENGTH:
        raise invalid_ticket("The ticket is not one of ours; ask POST /queue/{id}/ws-ticket.")
    with queue_reachable():
        raw = await runtime.store.redis.getdel(_key(runtime, event_id, ticket))
    if raw is None:
        # Keyed by event: another event's ticket is not found here (and stays unused).
        raise invalid_ticket(
            "The ticket is unknown, expired, already used or for another event; ask "
            "POST /queue/{event_id}/ws-ticket for a new one."
        )
    owner_event, user_id = orjson.loads(raw)
    if owner_event != event_id or not isinstance(user_id, str):
        raise invalid_ticket("The ticket is for another event.")
    return user_id
