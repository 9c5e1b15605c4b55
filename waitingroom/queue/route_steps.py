"""What the queue's routes share, as HTTP answers: the event named in the path, where the
fan stands (counted against the queue's limits), and Redis failing as a retryable 503; and
as the document shows them: the path's event id and the refusals these steps give.

The runtime itself raises no HTTP problem: these steps turn its answers into them."""

from __future__ import annotations

import contextlib

from aiohttp import web

from ticketing.api import Api, Operation, PathId, Problems
from ticketing.api.common import RETRY_AFTER
from ticketing.api.declare import Handler
from ticketing.dependencies import POSTGRES_ERRORS, REDIS_ERRORS
from ticketing.problems import Problem, backend_unavailable, unavailable_on
from ticketing.ratelimit import client_address
from ticketing.validation import parse_id
from waitingroom.queue.events import QueueEvent
from waitingroom.queue.runtime import QueueRuntime
from waitingroom.queue.store import Placement, RateLimited

NO_EVENT = Problem(404, "event_not_found", "No such event with a waiting room.")


def _no_event() -> Problem:
    return Problem(404, "event_not_found", "No such event with a waiting room.")


# The decorator answers a malformed id with the 404 after authentication, before the query
# or body; a route served as it is (serve) checks it itself with event_id_of.
EVENT_ID = PathId(
    "event_id",
    "Event id; unknown or malformed ids answer 404 event_not_found.",
    missing=_no_event,
)
EVENT_NOT_FOUND = Problems(
    404, "no such event, a malformed id, or no waiting room", codes=("event_not_found",)
)
QUEUE_LIMITED = Problems(
    429,
    "too many queue calls from this fan or address; retry after Retry-After",
    codes=("rate_limited",),
    headers=RETRY_AFTER,
)
QUEUE_DOWN = Problems(
    503,
    "Redis (the queue), or PostgreSQL when the event is looked up, is not reachable; retry "
    "after Retry-After",
    codes=("backend_unavailable",),
    headers=RETRY_AFTER,
)


def event_id_of(request: web.Request) -> int:
    return parse_id(request.match_info["event_id"], NO_EVENT)


def serve(api: Api, handler: Handler, operation: Operation) -> None:
    """Serve ``handler`` as it is, described by ``operation``: for a route that reads its
    own input in a way :meth:`Api.route` does not (an optional body, a websocket's token, a
    query only the page's script reads), or a hot one that authenticates first itself,
    with no wrapper around it."""
    api.served(handler, operation)


def queue_reachable() -> contextlib.AbstractContextManager[None]:
    """Redis failing inside is the fan's ``503 backend_unavailable``, with Retry-After."""
    return unavailable_on(REDIS_ERRORS, "The queue is not reachable; retry shortly.")


async def event_or_404(runtime: QueueRuntime, event_id: int) -> QueueEvent:
    try:
        event = await runtime.events.get(event_id)
    except POSTGRES_ERRORS as exc:
        raise backend_unavailable("The event catalog is not reachable; retry shortly.") from exc
    if event is None:
        raise Problem(404, "event_not_found", "No such event with a waiting room.")
    return event


async def arrive(
    request: web.Request,
    runtime: QueueRuntime,
    event: QueueEvent,
    user_id: str,
    *,
    join: bool,
    restore: tuple[str, int, str] | None = None,
) -> Placement:
    """Where the fan stands (joining them first with ``join``), counted against the
    fan's and the address's queue limits (429 when either refuses)."""
    address = client_address(request)
    with queue_reachable():
        try:
            return await runtime.store.place(
                event.event_id,
                user_id,
                join=join,
                on_sale_ms=event.on_sale_ms,
                restore=restore,
                address=address,
            )
        except RateLimited as limited:
            raise Problem(
                429,
                "rate_limited",
                "Too many queue requests; the websocket pushes your place, no need to poll "
                "this fast.",
                headers={"Retry-After": str(limited.retry_after_seconds)},
            ) from None


async def placement_or_404(
    request: web.Request, runtime: QueueRuntime, event: QueueEvent, user_id: str, detail: str
) -> Placement:
    """Where this fan stands now (without joining), or 404 not_in_queue."""
    placement = await arrive(request, runtime, event, user_id, join=False)
    if placement.kind == "none":
        raise Problem(404, "not_in_queue", detail)
    return placement
