"""The problems catalog_api's routes declare beyond the shared ones (ticketing/api/common)."""

from __future__ import annotations

from catalog_api.shapes import RefusedField
from ticketing.api import PathId, Problems
from ticketing.api.common import (
    BAD_REQUEST,
    FORBIDDEN,
    RATE_LIMITED,
    TOO_LARGE,
    UNAUTHORIZED,
    UNAVAILABLE,
)
from ticketing.problems import Problem


def event_not_found() -> Problem:
    return Problem(404, "event_not_found", "There is no event with this id.")


EVENT_ID = PathId(
    "event_id",
    "Event id; unknown or malformed ids answer 404 event_not_found.",
    missing=event_not_found,
)

NO_EVENT = Problems(404, "no event has this id", codes=("event_not_found",))

# What every admin write may answer before and beside its own outcome.
ADMIN_REFUSALS = (BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, TOO_LARGE, RATE_LIMITED, UNAVAILABLE)

UNKNOWN_REFERENCE = Problems(
    404,
    "the body names a venue or performer that does not exist (field names which); the same "
    "convention as event_id in POST /booking/reserve",
    codes=("venue_not_found", "performer_not_found"),
    extra=RefusedField,
)
NO_EVENT_OR_PERFORMER = Problems(
    404,
    "no event has this id, or the body names a performer that does not exist (field names it)",
    codes=("event_not_found", "performer_not_found"),
    extra=RefusedField,
)
CURRENCY_LOCKED = Problems(
    409,
    "tickets of the event are already held or sold, so its currency stays",
    codes=("currency_locked",),
    extra=RefusedField,
)
