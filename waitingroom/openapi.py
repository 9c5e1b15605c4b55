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
    return document(TITLE, DESCRIPTION, apis(role))
