"""``GET /queue/{event_id}/ws?ticket=<ticket>``: a fan's live place in the queue.

Browsers cannot set an Authorization header on a websocket, and an access token in a URL
ends up in proxies' and servers' logs: the page opens the socket with a single-use ticket
from :mod:`waitingroom.queue.ws_ticket` instead. Clients that can set headers may send the
bearer token; ``?token=<JWT>`` is accepted only in development. The handshake is refused
(as a problem document, before the upgrade) for a bad ticket or token, a foreign
``Origin``, an unknown event or a fan who has not joined. After it the server pushes (see
:mod:`waitingroom.queue.hub`); the client has nothing to say.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from ticketing.api import Api, Empty, Operation, Problems
from ticketing.api.common import UNAUTHORIZED
from ticketing.auth import VERIFIER_KEY, bearer_token, require_user
from ticketing.dependencies import REDIS_ERRORS
from ticketing.problems import Problem
from waitingroom.queue.fan import Fan
from waitingroom.queue.route_steps import (
    EVENT_ID,
    QUEUE_DOWN,
    QUEUE_LIMITED,
    event_id_of,
    event_or_404,
    placement_or_404,
    serve,
)
from waitingroom.queue.runtime import QUEUE_KEY, QueueRuntime
from waitingroom.queue.shapes import QueueSocketQuery
from waitingroom.queue.ws_ticket import invalid_ticket, redeem

SOCKET_API = Api()

# Pings find fans who vanished without closing (a phone losing signal); a fan who stops
# answering them stops counting as seen and loses their place like one who never polled.
HEARTBEAT_SECONDS = 30.0


def check_origin(request: web.Request, allowed: str) -> None:
    """Same origin as the page (the gateway's Host), or listed; no Origin is a non-browser
    client, which still needs a valid token."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    listed = {o.strip().rstrip("/") for o in allowed.split(",") if o.strip()}
    if origin.rstrip("/") in listed or urlsplit(origin).netloc == request.host:
        return
    raise Problem(403, "forbidden_origin", "Websockets to the queue open from its own pages.")


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="ticketing"'}
    )


async def socket_user(request: web.Request, runtime: QueueRuntime, event_id: int) -> str:
    """Whose socket this is: the ticket's fan, or the bearer token's (``?token=`` only in
    development). A ticket sent with a bearer token must be that token's fan's."""
    ticket = request.query.get("ticket")
    if ticket is not None:
        user_id = await redeem(runtime, event_id, ticket)
        if bearer_token(request) is not None and require_user(request).user_id != user_id:
            raise invalid_ticket("The ticket is another fan's.")
        return user_id
    if bearer_token(request) is not None:
        return require_user(request).user_id
    token = request.query.get("token")
    if token is None:
        raise _unauthorized("Open the socket with ?ticket= from POST /queue/{id}/ws-ticket.")
    if not runtime.settings.is_dev:
        raise _unauthorized(
            "Access tokens are not accepted in URLs; open the socket with ?ticket= from "
            "POST /queue/{id}/ws-ticket."
        )
    return request.app[VERIFIER_KEY].verify(token).user_id


async def queue_socket(request: web.Request) -> web.StreamResponse:
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    check_origin(request, runtime.settings.queue_allowed_origins)
    user_id = await socket_user(request, runtime, event_id)
    event = await event_or_404(runtime, event_id)
    placement = await placement_or_404(
        request, runtime, event, user_id, "Join the queue before opening its websocket."
    )
    ws = web.WebSocketResponse(
        heartbeat=HEARTBEAT_SECONDS, compress=False, max_msg_size=4096, autoping=True
    )
    await ws.prepare(request)
    fan = Fan(ws, request.transport, user_id, event, placement)
    try:
        await runtime.hub.add(fan)
        async for _ in ws:
            pass  # nothing to hear; reading answers pings and notices the close
    except REDIS_ERRORS:
        pass  # the first status could not be read; the client reconnects or polls
    finally:
        runtime.hub.remove(fan)
    return ws


# Served as it is: the upgrade is the handler's, and the fan may be named three ways.
serve(
    SOCKET_API,
    queue_socket,
    Operation(
        "GET",
        "/queue/{event_id}/ws",
        summary="Websocket of the fan's place",
        description='The server pushes {"type": "status", ...QueueStatus} when the '
        'position changes and at least every 5 s; {"type": "admitted", '
        '"admission_token", "expires_at"} at once on admission; {"type": '
        '"sold_out"} within a second of the sell-out (to admitted fans too, whose sessions '
        "end; the socket stays open and the status follows, should seats come back); a "
        'status at once when all_held starts or ends; {"type": "paused"} at once on a '
        'pause and {"type": "resumed"} at once when it ends (the full status follows '
        'within 5 s); {"type": "session_ended", "reason": '
        "expired|booked|left|unclaimed|ended|lost} (then the socket closes; unclaimed: no "
        "seats held within the claim window; lost: the queue lost its state, or lost the "
        "fan's join in a failover, join again with the queue ticket to get the place or "
        "the session back). Every message "
        "carries event_id. Open it with a ?ticket= from POST /queue/{event_id}/ws-ticket "
        "(single use, valid 30 s), or a bearer Authorization header where the client "
        "can set one; ?token=<JWT> is accepted only when TICKETING_ENV=dev.",
        query=QueueSocketQuery,
        path_ids=(EVENT_ID,),
        replies=(
            Empty(101, "Switching to the websocket protocol"),
            Problems(
                401,
                "no ticket or token (a ?token= outside development included), a bad token, "
                "or a ticket that is unknown, expired, already used, another event's or "
                "another fan's than the bearer token's",
                codes=(*UNAUTHORIZED.codes, "invalid_ticket"),
            ),
            Problems(
                403,
                "Origin is not this site or an allowed one",
                codes=("forbidden_origin",),
            ),
            Problems(
                404, "no such event, or join first", codes=("event_not_found", "not_in_queue")
            ),
            QUEUE_LIMITED,
            QUEUE_DOWN,
        ),
    ),
)
