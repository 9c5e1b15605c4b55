"""The waitingroom's own OpenAPI document: the routes of the application it runs (the
queue, the booking front door, dev tokens) and the platform's two (health, this document).
The gateway serves it merged with catalog_api's (deploy/openapi.py)."""

from __future__ import annotations

from typing import Any

from ticketing.api import Api, document
from ticketing.dev_token import DEV_TOKEN_API
from ticketing.jwks import JWKS_API
from ticketing.web import PLATFORM_API
from waitingroom.booking.contract import BOOKING_APIS
from waitingroom.queue.contract import QUEUE_APIS

TITLE = "Ticketing waitingroom"
DESCRIPTION = (
    "The virtual waiting room (joins, positions, admission, the fans' and operators' pages) "
    "and the booking front door (reserve, confirm, release, bookings, Stripe webhooks)."
)


def apis(role: str = "all") -> list[Api]:
    """What an application of ``role`` serves (``booking``: the front door alone)."""
    if role == "booking":
        return [PLATFORM_API, *BOOKING_APIS]
    return [PLATFORM_API, DEV_TOKEN_API, JWKS_API, *QUEUE_APIS, *BOOKING_APIS]


def build_document(role: str = "all") -> dict[str, Any]:
    doc = document(TITLE, DESCRIPTION, apis(role))
    status = doc.get("components", {}).get("schemas", {}).get("QueueStatus")
    if status is not None:
        # One person, one place (waitingroom/queue/signals_join.py): the join's and the
        # status's answers, not the pushes' (the same shape, QueueStatus).
        status["properties"]["moved"] = MOVED
    return doc


MOVED = {
    "type": "string",
    "enum": ["cluster"],
    "title": "Moved",
    "description": "Only when the fan was moved to the back of the line: their account is in "
    "a cluster of accounts that look like one actor's (an address block or device with more "
    "than the event's cluster_threshold accounts, or a card another account paid with), and "
    "the event's cluster_rule is back_of_line. It happens once; the place shown is the one "
    "after the move.",
}
