"""Building blocks and component schemas of catalog_api's OpenAPI document."""

from __future__ import annotations

from typing import Any


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }


def query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


INT = {"type": "integer"}
STR = {"type": "string"}
DATE = {"type": "string", "format": "date"}
TIME = {"type": "string", "format": "date-time"}
EVENT_ID = {
    "name": "event_id",
    "in": "path",
    "required": True,
    "schema": STR,
    "description": "Event id; unknown or malformed ids answer 404 event_not_found.",
}
BAD = problem("validation_error: malformed JSON, wrong types or out-of-range values")
NO_EVENT = problem("event_not_found")
DOWN = problem("backend_unavailable")
ADMIN_ERRORS = {
    "400": BAD,
    "401": problem("unauthorized / invalid_token / token_expired"),
    "403": problem("forbidden: the token lacks the admin role"),
    "413": problem("payload_too_large"),
    "503": DOWN,
}
LIMIT = query_param(
    "limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size."
)
CURSOR = query_param("cursor", STR, "Opaque cursor from next_cursor.")
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {"type": STR, "title": STR, "status": INT, "detail": STR, "code": STR},
    },
    "Location": {
        "type": "object",
        "required": ["lat", "lon"],
        "properties": {
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
        },
    },
    "EventSummary": {
        "type": "object",
        "required": [
            "id",
            "name",
            "date",
            "venue",
            "performer",
            "min_price_cents",
            "currency",
            "available_tickets",
            "queue_enabled",
        ],
        "properties": {
            "id": INT,
            "name": STR,
            "date": TIME,
            "venue": {"type": "object", "properties": {"id": INT, "name": STR, "city": STR}},
            "performer": {"type": "object", "properties": {"id": INT, "name": STR}},
            "min_price_cents": INT,
            "currency": STR,
            "available_tickets": INT,
            "queue_enabled": {"type": "boolean"},
        },
    },
    "Event": {
        "allOf": [
            ref("EventSummary"),
            {
                "type": "object",
                "properties": {
                    "description": STR,
                    "venue": {
                        "type": "object",
                        "properties": {
                            "id": INT,
                            "name": STR,
                            "city": STR,
                            "location": ref("Location"),
                        },
                    },
                    "on_sale_at": TIME,
                    "availability": {
                        "type": "object",
                        "properties": {
                            "available": INT,
                            "reserved": INT,
                            "booked": INT,
                            "total": INT,
                        },
                    },
                    "price_tiers": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "section": STR,
                                "price_cents": INT,
                                "total": INT,
                                "available": INT,
                                "reserved": INT,
                                "booked": INT,
                            },
                        },
                    },
                },
            },
        ],
    },
    "Ticket": {
        "type": "object",
        "properties": {
            "id": INT,
            "seat": {
                "type": "object",
                "properties": {"section": STR, "row": STR, "number": INT},
            },
            "price_cents": INT,
            "status": {"enum": ["available", "reserved", "booked"]},
        },
    },
    "Section": {
        "type": "object",
        "required": ["name", "rows", "seats_per_row", "price_cents"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 50},
            "rows": {"type": "integer", "minimum": 1, "maximum": 200},
            "seats_per_row": {"type": "integer", "minimum": 1, "maximum": 500},
            "price_cents": {"type": "integer", "minimum": 0},
        },
    },
    "VenueInput": {
        "type": "object",
        "required": ["name", "city", "location", "seat_map"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "city": {"type": "string", "minLength": 1, "maxLength": 100},
            "location": ref("Location"),
            "seat_map": {
                "type": "object",
                "required": ["sections"],
                "properties": {
                    "sections": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 50,
                        "items": ref("Section"),
                    }
                },
                "description": "At most 100,000 seats in all; section names unique.",
            },
        },
    },
    "Venue": {
        "type": "object",
        "properties": {
            "id": INT,
            "name": STR,
            "city": STR,
            "location": ref("Location"),
            "seat_map": {"type": "object"},
            "capacity": INT,
        },
    },
    "PerformerInput": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "genre": {"type": "string", "maxLength": 100},
            "description": {"type": "string", "maxLength": 5000},
        },
    },
    "Performer": {
        "type": "object",
        "properties": {"id": INT, "name": STR, "genre": STR, "description": STR},
    },
    "EventInput": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "name",
            "description",
            "date",
            "venue_id",
            "performer_id",
            "queue_enabled",
            "currency",
        ],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": {"type": "string", "maxLength": 5000},
            "date": {**TIME, "description": "RFC 3339 with an offset."},
            "venue_id": INT,
            "performer_id": INT,
            "on_sale_at": {**TIME, "description": "Defaults to now; not after date."},
            "queue_enabled": {"type": "boolean"},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        },
    },
    "EventPatch": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": {"type": "string", "maxLength": 5000},
            "date": TIME,
            "on_sale_at": TIME,
            "queue_enabled": {"type": "boolean"},
            "currency": {
                "type": "string",
                "pattern": "^[A-Z]{3}$",
                "description": "Only while no ticket is held or sold.",
            },
            "performer_id": INT,
        },
    },
}

_SEAT = {
    "type": "object",
    "required": ["section", "row", "number"],
    "properties": {"section": STR, "row": STR, "number": INT},
}
_UUID = {"type": "string", "format": "uuid"}
_BOOKED_TICKET = {
    "type": "object",
    "required": ["id", "seat", "price_cents"],
    "properties": {"id": INT, "seat": _SEAT, "price_cents": INT},
}
_TICKET_IDS = {"type": "array", "minItems": 1, "maxItems": 100, "uniqueItems": True, "items": INT}

BOOKING_SCHEMAS: dict[str, Any] = {
    "ReserveRequest": {
        "description": "Exactly one of ticket_ids, ticket_id or quantity. All or nothing.",
        "oneOf": [
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["event_id", "ticket_ids"],
                "properties": {"event_id": INT, "ticket_ids": _TICKET_IDS},
            },
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["event_id", "ticket_id"],
                "properties": {"event_id": INT, "ticket_id": INT},
            },
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["event_id", "quantity"],
                "description": "Best available seats, adjacent when possible.",
                "properties": {
                    "event_id": INT,
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 100},
                    "section": {"type": "string", "minLength": 1, "maxLength": 100},
                },
            },
        ],
    },
    "BookedTicket": _BOOKED_TICKET,
    "Hold": {
        "type": "object",
        "required": [
            "hold_id",
            "event_id",
            "tickets",
            "amount_cents",
            "currency",
            "expires_at",
            "status",
        ],
        "properties": {
            "hold_id": _UUID,
            "event_id": INT,
            "tickets": {"type": "array", "items": ref("BookedTicket")},
            "amount_cents": INT,
            "currency": STR,
            "expires_at": {
                **TIME,
                "description": "Nobody else can hold or buy these tickets until then "
                "(TICKETING_HOLD_TTL_SECONDS, default 10 minutes).",
            },
            "status": {"const": "held"},
        },
    },
    "ConfirmRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["hold_id", "payment_method"],
        "properties": {
            "hold_id": _UUID,
            "payment_method": {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "description": "A Stripe payment method id, e.g. pm_card_visa.",
            },
        },
    },
    "Booking": {
        "type": "object",
        "required": [
            "booking_id",
            "hold_id",
            "status",
            "tickets",
            "amount_cents",
            "currency",
            "payment_intent_id",
            "created_at",
        ],
        "properties": {
            "booking_id": _UUID,
            "hold_id": _UUID,
            "status": {
                "enum": ["confirmed", "refunded"],
                "description": "refunded: paid after its hold expired and its seats were "
                "taken; the payment was refunded automatically.",
            },
            "tickets": {"type": "array", "items": ref("BookedTicket")},
            "amount_cents": INT,
            "currency": STR,
            "payment_intent_id": STR,
            "created_at": TIME,
        },
    },
    "TicketStatus": {
        "type": "object",
        "required": ["ticket_id", "status"],
        "properties": {
            "ticket_id": INT,
            "status": {"enum": ["available", "reserved", "booked"]},
            "hold_id": {**_UUID, "description": "Shown to the hold's owner (and admins) only."},
            "expires_at": {**TIME, "description": "With hold_id."},
            "booking_id": {
                **_UUID,
                "description": "Shown to the booking's owner (and admins) only.",
            },
        },
    },
    "TicketsUnavailable": {
        "allOf": [
            ref("Problem"),
            {
                "type": "object",
                "required": ["unavailable_ticket_ids"],
                "properties": {
                    "unavailable_ticket_ids": {
                        "type": "array",
                        "items": INT,
                        "description": "The requested tickets someone else holds or bought "
                        "(empty for a best-available request that could not be met).",
                    }
                },
            },
        ]
    },
    "LimitExceeded": {
        "allOf": [
            ref("Problem"),
            {"type": "object", "properties": {"limit": INT, "held_or_booked": INT}},
        ]
    },
    "PaymentFailed": {
        "allOf": [
            ref("Problem"),
            {"type": "object", "properties": {"decline_code": {"type": ["string", "null"]}}},
        ]
    },
}
SCHEMAS.update(BOOKING_SCHEMAS)


def problem_of(schema_name: str, description: str) -> dict[str, Any]:
    """A problem document with extra members, described by a component schema."""
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": ref(schema_name)}},
    }


def page_of(schema_name: str, description: str) -> dict[str, Any]:
    """A keyset-paginated list response."""
    return json_body(
        {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": ref(schema_name)},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
        description,
    )
