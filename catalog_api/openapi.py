"""The OpenAPI 3.1 description of every public route behind the gateway: catalog_api's own
and the waitingroom's (dev tokens, booking, Stripe webhooks). A test keeps it in step with
both routers."""

from __future__ import annotations

from typing import Any

from catalog_api.openapi_pages import PAGE_PATHS
from catalog_api.openapi_queue import QUEUE_PATHS, QUEUE_SCHEMAS
from catalog_api.openapi_schemas import (
    ADMIN_ERRORS,
    BAD,
    BEARER,
    CURSOR,
    DATE,
    DOWN,
    EVENT_ID,
    INT,
    LIMIT,
    NO_EVENT,
    SCHEMAS,
    STR,
    json_body,
    page_of,
    problem,
    problem_of,
    query_param,
    ref,
)

_EVENT_VIEW_RESPONSE = {
    **json_body(
        ref("Event"),
        "The event. X-Served-From says which source answered: "
        "database, cache or search-index (the last two keep views up while "
        "Postgres is down).",
    ),
    "headers": {"X-Served-From": {"schema": {"enum": ["database", "cache", "search-index"]}}},
}
_GET_EVENT = {
    "summary": "One event with availability and price tiers",
    "parameters": [EVENT_ID],
    "responses": {"200": _EVENT_VIEW_RESPONSE, "404": NO_EVENT, "503": DOWN},
}

PATHS: dict[str, Any] = {
    "/events": {
        "get": {
            "summary": "List events by date, then id",
            "parameters": [
                LIMIT,
                CURSOR,
                query_param("city", STR, "Venue city, case-insensitive exact match."),
                query_param("date_from", DATE, "First UTC day (inclusive)."),
                query_param("date_to", DATE, "Last UTC day (inclusive)."),
                query_param("performer_id", INT, "Only this performer's events."),
            ],
            "responses": {
                "200": page_of("EventSummary", "A page of events"),
                "400": BAD,
                "503": DOWN,
            },
        }
    },
    "/events/{event_id}": {"get": _GET_EVENT},
    "/event/{event_id}": {"get": _GET_EVENT},
    "/events/{event_id}/tickets": {
        "get": {
            "summary": "The event's tickets (seats), in seat-map order",
            "parameters": [
                EVENT_ID,
                query_param(
                    "status", {"enum": ["available", "reserved", "booked"]}, "Ticket status."
                ),
                query_param("section", STR, "Section name."),
                query_param(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 500, "default": 20},
                    "Page size.",
                ),
                CURSOR,
            ],
            "responses": {
                "200": page_of("Ticket", "A page of tickets"),
                "400": BAD,
                "404": NO_EVENT,
                "503": DOWN,
            },
        }
    },
    "/search": {
        "get": {
            "summary": "Full-text event search (typo-tolerant, by prefix) with filters and facets",
            "description": "Served by Typesense; when it is unavailable, by a Postgres query with "
            "the same filters and shape, flagged X-Search-Degraded.",
            "parameters": [
                query_param("term", STR, "Matches event, performer and venue names."),
                query_param("location", STR, "Venue city, typo-tolerant."),
                query_param("date", DATE, "One UTC calendar day."),
                query_param("date_from", DATE, "First UTC day (inclusive)."),
                query_param("date_to", DATE, "Last UTC day (inclusive)."),
                query_param(
                    "near",
                    {"type": "string", "pattern": r"^-?\d+(\.\d+)?,-?\d+(\.\d+)?$"},
                    "lat,lon; requires radius_km.",
                ),
                query_param(
                    "radius_km",
                    {"type": "number", "exclusiveMinimum": 0, "maximum": 20000},
                    "Radius around near; requires near.",
                ),
                query_param(
                    "page",
                    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1},
                    "Page number.",
                ),
                query_param(
                    "per_page",
                    {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                    "Hits per page.",
                ),
            ],
            "responses": {
                "200": {
                    **json_body(
                        {
                            "type": "object",
                            "properties": {
                                "found": INT,
                                "page": INT,
                                "hits": {"type": "array", "items": ref("EventSummary")},
                                "facets": {
                                    "type": "object",
                                    "properties": {
                                        "city": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "properties": {"value": STR, "count": INT},
                                            },
                                        }
                                    },
                                },
                            },
                        },
                        "Search results",
                    ),
                    "headers": {
                        "X-Search-Degraded": {"schema": {"const": "typesense-unavailable"}}
                    },
                },
                "400": BAD,
                "503": DOWN,
            },
        }
    },
    "/admin/venues": {
        "post": {
            "summary": "Create a venue with its seat map",
            "security": BEARER,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("VenueInput")}},
            },
            "responses": {"201": json_body(ref("Venue"), "Created"), **ADMIN_ERRORS},
        }
    },
    "/admin/performers": {
        "post": {
            "summary": "Create a performer",
            "security": BEARER,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("PerformerInput")}},
            },
            "responses": {"201": json_body(ref("Performer"), "Created"), **ADMIN_ERRORS},
        }
    },
    "/admin/events": {
        "post": {
            "summary": "Create an event; one ticket per seat of the venue, priced by section",
            "security": BEARER,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("EventInput")}},
            },
            "responses": {
                "201": json_body(ref("Event"), "Created"),
                **ADMIN_ERRORS,
                "404": problem(
                    "venue_not_found / performer_not_found: the body names an id "
                    "that does not exist (same convention as event_id in "
                    "POST /booking/reserve)"
                ),
            },
        }
    },
    "/admin/events/{event_id}": {
        "patch": {
            "summary": "Edit an event (partial)",
            "security": BEARER,
            "parameters": [EVENT_ID],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("EventPatch")}},
            },
            "responses": {
                "200": json_body(ref("Event"), "The edited event"),
                **ADMIN_ERRORS,
                "404": problem("event_not_found / performer_not_found"),
                "409": problem("currency_locked: tickets are already held or sold"),
            },
        }
    },
    "/auth/dev-token": {
        "post": {
            "summary": "Development token (served by the waitingroom; only when TICKETING_ENV=dev, "
            "404 otherwise)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["user_id"],
                            "properties": {
                                "user_id": {"type": "string", "minLength": 1, "maxLength": 128},
                                "roles": {"type": "array", "items": STR},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "properties": {
                            "access_token": STR,
                            "token_type": {"const": "Bearer"},
                            "expires_in": INT,
                        },
                    },
                    "A bearer token",
                ),
                "400": BAD,
                "404": problem("not_found: not in development"),
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Dependency health (postgres, redis, typesense)",
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "properties": {"status": {"const": "ok"}, "components": {"type": "object"}},
                    },
                    "All reachable",
                ),
                "503": problem("backend_unavailable, naming what is down in components"),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": json_body({"type": "object"}, "OpenAPI 3.1 document")},
        }
    },
}

# --- booking (served by the waitingroom, applied by booking workers) -----------------------

_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "1 to 255 printable ASCII characters. The same key from the same user on "
    "the same route is the same command: a retry (say after a 503 or a lost connection) "
    "gets the first attempt's answer instead of acting twice.",
}
_ADMISSION_TOKEN = {
    "name": "X-Admission-Token",
    "in": "header",
    "required": False,
    "schema": STR,
    "description": "Required when the event's waiting room (queue) is enabled; issued by "
    "the queue to this user for this event.",
}
_HOLD_ID = {
    "name": "hold_id",
    "in": "path",
    "required": True,
    "schema": STR,
    "description": "Hold id (UUID); anything else answers 404 hold_not_found.",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds."}}
_UNAUTHORIZED = problem("unauthorized / invalid_token / token_expired: a bearer token is needed")
_RATE_LIMITED = {**problem("rate_limited"), "headers": _RETRY_AFTER}
_BOOKING_DOWN = {
    **problem(
        "backend_unavailable: RabbitMQ or every booking worker is down, or no worker "
        "answered within TICKETING_BOOKING_RPC_TIMEOUT_SECONDS. A command already accepted is "
        "durable and still applied; retry with the same Idempotency-Key to get its outcome."
    ),
    "headers": _RETRY_AFTER,
}
_BOOKING_COMMON = {"401": _UNAUTHORIZED, "429": _RATE_LIMITED, "503": _BOOKING_DOWN}
_NOT_YOUR_HOLD = problem("not_your_hold: the hold belongs to another user")
_NO_HOLD = problem("hold_not_found")


def _json_request(schema_name: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": ref(schema_name)}},
    }


BOOKING_PATHS: dict[str, Any] = {
    "/booking/reserve": {
        "post": {
            "summary": "Hold tickets: chosen ones (all or nothing) or the best available",
            "description": "Once 201 is returned nobody else can hold or buy these tickets "
            "until expires_at. Counts against the per-user cap per event (held plus booked, "
            "TICKETING_MAX_TICKETS_PER_USER).",
            "security": BEARER,
            "parameters": [_ADMISSION_TOKEN, _IDEMPOTENCY_KEY],
            "requestBody": _json_request("ReserveRequest"),
            "responses": {
                "201": json_body(ref("Hold"), "The hold"),
                "400": BAD,
                **_BOOKING_COMMON,
                "403": problem(
                    "admission_required: the event's queue is enabled and no "
                    "X-Admission-Token was sent / admission_invalid: the token is malformed, "
                    "expired, or for another user or event, or its session ended (booked, "
                    "left, sold out, or no seats held within the claim window)"
                ),
                "404": NO_EVENT,
                "409": problem_of(
                    "TicketsUnavailable",
                    "tickets_unavailable: some tickets are held or sold "
                    "(unavailable_ticket_ids names them); nothing was held / not_on_sale: "
                    "before the event's on_sale_at (on_sale_at says when), for every event, "
                    "with or without a waiting room",
                ),
                "413": problem("payload_too_large"),
                "422": problem_of(
                    "LimitExceeded",
                    "limit_exceeded: the per-user cap for this event would be exceeded",
                ),
            },
        }
    },
    "/booking/confirm": {
        "post": {
            "summary": "Pay for a hold; the booking is created once the payment succeeds",
            "description": "Confirming the same hold twice returns the same booking and "
            "charges once. A payment that succeeds after the hold expired is honoured if the "
            "seats are still free, otherwise refunded automatically.",
            "security": BEARER,
            "parameters": [_IDEMPOTENCY_KEY],
            "requestBody": _json_request("ConfirmRequest"),
            "responses": {
                "201": json_body(ref("Booking"), "The booking"),
                "400": BAD,
                **_BOOKING_COMMON,
                "402": problem_of(
                    "PaymentFailed",
                    "payment_failed: the payment was declined; the hold is kept until it "
                    "expires, so the fan can retry with another payment method",
                ),
                "403": _NOT_YOUR_HOLD,
                "404": _NO_HOLD,
                "409": problem(
                    "hold_expired: the hold ran out (a payment taken meanwhile is refunded "
                    "when its seats are gone) / payment_in_progress: another confirm of this "
                    "hold is still running; retry / not_on_sale: the event's on_sale_at was "
                    "moved later than now; nothing was charged"
                ),
                "413": problem("payload_too_large"),
            },
        }
    },
    "/booking/holds/{hold_id}": {
        "delete": {
            "summary": "Release a hold; its tickets are available again at once",
            "security": BEARER,
            "parameters": [_HOLD_ID, _IDEMPOTENCY_KEY],
            "responses": {
                "204": {"description": "Released (or already released)"},
                "400": problem("validation_error: a malformed Idempotency-Key"),
                **_BOOKING_COMMON,
                "403": _NOT_YOUR_HOLD,
                "404": _NO_HOLD,
                "409": problem(
                    "hold_confirmed: the hold is paid for, it is a booking / "
                    "hold_expired: it already ran out"
                ),
            },
        }
    },
    "/booking/{ticket_id}": {
        "get": {
            "summary": "One ticket's booking status",
            "description": "hold_id, expires_at and booking_id are shown to their owner "
            "(and admins) only.",
            "security": BEARER,
            "parameters": [
                {
                    "name": "ticket_id",
                    "in": "path",
                    "required": True,
                    "schema": STR,
                    "description": "Ticket id; unknown or malformed ids answer 404 "
                    "ticket_not_found.",
                }
            ],
            "responses": {
                "200": json_body(ref("TicketStatus"), "The ticket's status"),
                **_BOOKING_COMMON,
                "404": problem("ticket_not_found"),
            },
        }
    },
    "/bookings/{booking_id}": {
        "get": {
            "summary": "One booking (its owner or an admin)",
            "security": BEARER,
            "parameters": [
                {
                    "name": "booking_id",
                    "in": "path",
                    "required": True,
                    "schema": STR,
                    "description": "Booking id (UUID).",
                }
            ],
            "responses": {
                "200": json_body(ref("Booking"), "The booking"),
                **_BOOKING_COMMON,
                "404": problem("booking_not_found: no such booking, or it is someone else's"),
            },
        }
    },
    "/me/bookings": {
        "get": {
            "summary": "The caller's bookings, newest first",
            "security": BEARER,
            "parameters": [LIMIT, CURSOR],
            "responses": {
                "200": page_of("Booking", "A page of bookings"),
                "400": BAD,
                **_BOOKING_COMMON,
            },
        }
    },
    "/webhooks/stripe": {
        "post": {
            "summary": "Stripe events (payment_intent.*), signature-checked",
            "description": "Applied by a booking worker; a 200 is answered only once the event "
            "is committed (or was already), so Stripe redelivers otherwise. Duplicates are "
            "ignored.",
            "parameters": [
                {
                    "name": "Stripe-Signature",
                    "in": "header",
                    "required": True,
                    "schema": STR,
                    "description": "Signed with TICKETING_STRIPE_WEBHOOK_SECRET.",
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "properties": {
                            "received": {"const": True},
                            "duplicate": {"type": "boolean"},
                        },
                    },
                    "Applied (or a duplicate)",
                ),
                "400": problem(
                    "invalid_signature: Stripe-Signature does not match / "
                    "validation_error: not a Stripe event"
                ),
                "413": problem("payload_too_large"),
                "429": _RATE_LIMITED,
                "503": _BOOKING_DOWN,
            },
        }
    },
}
PATHS.update(BOOKING_PATHS)
PATHS.update(PAGE_PATHS)
PATHS.update(QUEUE_PATHS)
SCHEMAS.update(QUEUE_SCHEMAS)

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Ticketing API",
        "version": "1.0.0",
        "description": "Browse, view and search events; admin catalog writes; reserve, pay "
        "for and look up bookings. Errors are RFC 9457 problem documents with a stable code.",
    },
    "servers": [{"url": "http://127.0.0.1:8080"}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
    },
}


_PLATFORM_DECLARED = {"/auth/dev-token", "/healthz", "/openapi.json"}
_MODEL_DECLARED = {"Problem"}


def build_document() -> dict[str, Any]:
    """catalog_api's own document (for now still every route; being moved to models), less
    what the platform's declarations (ticketing/web.py, ticketing/dev_token.py) describe."""
    return {
        **DOCUMENT,
        "paths": {p: item for p, item in PATHS.items() if p not in _PLATFORM_DECLARED},
        "components": {
            **DOCUMENT["components"],
            "schemas": {n: s for n, s in SCHEMAS.items() if n not in _MODEL_DECLARED},
        },
    }
