"""The OpenAPI 3.1 description of catalog_api's public routes (and the dev token endpoint,
which the waitingroom serves behind the same gateway). A test keeps it in step with the
router."""

from __future__ import annotations

from typing import Any

from aiohttp import web

routes = web.RouteTableDef()


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_INT = {"type": "integer"}
_STR = {"type": "string"}
_DATE = {"type": "string", "format": "date"}
_TIME = {"type": "string", "format": "date-time"}
_EVENT_ID = {
    "name": "event_id",
    "in": "path",
    "required": True,
    "schema": _STR,
    "description": "Event id; unknown or malformed ids answer 404 event_not_found.",
}
_BAD = _problem("validation_error: malformed JSON, wrong types or out-of-range values")
_NO_EVENT = _problem("event_not_found")
_DOWN = _problem("backend_unavailable")
_ADMIN_ERRORS = {
    "400": _BAD,
    "401": _problem("unauthorized / invalid_token / token_expired"),
    "403": _problem("forbidden: the token lacks the admin role"),
    "413": _problem("payload_too_large"),
    "503": _DOWN,
}
_LIMIT = _query(
    "limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size."
)
_CURSOR = _query("cursor", _STR, "Opaque cursor from next_cursor.")
_BEARER = [{"bearer": []}]

_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {"type": _STR, "title": _STR, "status": _INT, "detail": _STR, "code": _STR},
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
            "id": _INT,
            "name": _STR,
            "date": _TIME,
            "venue": {"type": "object", "properties": {"id": _INT, "name": _STR, "city": _STR}},
            "performer": {"type": "object", "properties": {"id": _INT, "name": _STR}},
            "min_price_cents": _INT,
            "currency": _STR,
            "available_tickets": _INT,
            "queue_enabled": {"type": "boolean"},
        },
    },
    "Event": {
        "allOf": [
            _ref("EventSummary"),
            {
                "type": "object",
                "properties": {
                    "description": _STR,
                    "venue": {
                        "type": "object",
                        "properties": {
                            "id": _INT,
                            "name": _STR,
                            "city": _STR,
                            "location": _ref("Location"),
                        },
                    },
                    "on_sale_at": _TIME,
                    "availability": {
                        "type": "object",
                        "properties": {
                            "available": _INT,
                            "reserved": _INT,
                            "booked": _INT,
                            "total": _INT,
                        },
                    },
                    "price_tiers": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "section": _STR,
                                "price_cents": _INT,
                                "total": _INT,
                                "available": _INT,
                                "reserved": _INT,
                                "booked": _INT,
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
            "id": _INT,
            "seat": {
                "type": "object",
                "properties": {"section": _STR, "row": _STR, "number": _INT},
            },
            "price_cents": _INT,
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
            "location": _ref("Location"),
            "seat_map": {
                "type": "object",
                "required": ["sections"],
                "properties": {
                    "sections": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 50,
                        "items": _ref("Section"),
                    }
                },
                "description": "At most 100,000 seats in all; section names unique.",
            },
        },
    },
    "Venue": {
        "type": "object",
        "properties": {
            "id": _INT,
            "name": _STR,
            "city": _STR,
            "location": _ref("Location"),
            "seat_map": {"type": "object"},
            "capacity": _INT,
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
        "properties": {"id": _INT, "name": _STR, "genre": _STR, "description": _STR},
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
            "date": {**_TIME, "description": "RFC 3339 with an offset."},
            "venue_id": _INT,
            "performer_id": _INT,
            "on_sale_at": {**_TIME, "description": "Defaults to now; not after date."},
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
            "date": _TIME,
            "on_sale_at": _TIME,
            "queue_enabled": {"type": "boolean"},
            "currency": {
                "type": "string",
                "pattern": "^[A-Z]{3}$",
                "description": "Only while no ticket is held or sold.",
            },
            "performer_id": _INT,
        },
    },
}

_EVENT_VIEW_RESPONSE = {
    **_json(
        _ref("Event"),
        "The event. X-Served-From says which source answered: "
        "database, cache or search-index (the last two keep views up while "
        "Postgres is down).",
    ),
    "headers": {"X-Served-From": {"schema": {"enum": ["database", "cache", "search-index"]}}},
}
_GET_EVENT = {
    "summary": "One event with availability and price tiers",
    "parameters": [_EVENT_ID],
    "responses": {"200": _EVENT_VIEW_RESPONSE, "404": _NO_EVENT, "503": _DOWN},
}

PATHS: dict[str, Any] = {
    "/events": {
        "get": {
            "summary": "List events by date, then id",
            "parameters": [
                _LIMIT,
                _CURSOR,
                _query("city", _STR, "Venue city, case-insensitive exact match."),
                _query("date_from", _DATE, "First UTC day (inclusive)."),
                _query("date_to", _DATE, "Last UTC day (inclusive)."),
                _query("performer_id", _INT, "Only this performer's events."),
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "items": {"type": "array", "items": _ref("EventSummary")},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    },
                    "A page of events",
                ),
                "400": _BAD,
                "503": _DOWN,
            },
        }
    },
    "/events/{event_id}": {"get": _GET_EVENT},
    "/event/{event_id}": {"get": _GET_EVENT},
    "/events/{event_id}/tickets": {
        "get": {
            "summary": "The event's tickets (seats), in seat-map order",
            "parameters": [
                _EVENT_ID,
                _query("status", {"enum": ["available", "reserved", "booked"]}, "Ticket status."),
                _query("section", _STR, "Section name."),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 500, "default": 20},
                    "Page size.",
                ),
                _CURSOR,
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "items": {"type": "array", "items": _ref("Ticket")},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    },
                    "A page of tickets",
                ),
                "400": _BAD,
                "404": _NO_EVENT,
                "503": _DOWN,
            },
        }
    },
    "/search": {
        "get": {
            "summary": "Full-text event search (typo-tolerant, by prefix) with filters and facets",
            "description": "Served by Typesense; when it is unavailable, by a Postgres query with "
            "the same filters and shape, flagged X-Search-Degraded.",
            "parameters": [
                _query("term", _STR, "Matches event, performer and venue names."),
                _query("location", _STR, "Venue city, typo-tolerant."),
                _query("date", _DATE, "One UTC calendar day."),
                _query("date_from", _DATE, "First UTC day (inclusive)."),
                _query("date_to", _DATE, "Last UTC day (inclusive)."),
                _query(
                    "near",
                    {"type": "string", "pattern": r"^-?\d+(\.\d+)?,-?\d+(\.\d+)?$"},
                    "lat,lon; requires radius_km.",
                ),
                _query(
                    "radius_km",
                    {"type": "number", "exclusiveMinimum": 0, "maximum": 20000},
                    "Radius around near; requires near.",
                ),
                _query(
                    "page",
                    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1},
                    "Page number.",
                ),
                _query(
                    "per_page",
                    {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                    "Hits per page.",
                ),
            ],
            "responses": {
                "200": {
                    **_json(
                        {
                            "type": "object",
                            "properties": {
                                "found": _INT,
                                "page": _INT,
                                "hits": {"type": "array", "items": _ref("EventSummary")},
                                "facets": {
                                    "type": "object",
                                    "properties": {
                                        "city": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "properties": {"value": _STR, "count": _INT},
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
                "400": _BAD,
                "503": _DOWN,
            },
        }
    },
    "/admin/venues": {
        "post": {
            "summary": "Create a venue with its seat map",
            "security": _BEARER,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("VenueInput")}},
            },
            "responses": {"201": _json(_ref("Venue"), "Created"), **_ADMIN_ERRORS},
        }
    },
    "/admin/performers": {
        "post": {
            "summary": "Create a performer",
            "security": _BEARER,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("PerformerInput")}},
            },
            "responses": {"201": _json(_ref("Performer"), "Created"), **_ADMIN_ERRORS},
        }
    },
    "/admin/events": {
        "post": {
            "summary": "Create an event; one ticket per seat of the venue, priced by section",
            "security": _BEARER,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("EventInput")}},
            },
            "responses": {
                "201": _json(_ref("Event"), "Created"),
                **_ADMIN_ERRORS,
                "404": _problem(
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
            "security": _BEARER,
            "parameters": [_EVENT_ID],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("EventPatch")}},
            },
            "responses": {
                "200": _json(_ref("Event"), "The edited event"),
                **_ADMIN_ERRORS,
                "404": _problem("event_not_found / performer_not_found"),
                "409": _problem("currency_locked: tickets are already held or sold"),
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
                                "roles": {"type": "array", "items": _STR},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "access_token": _STR,
                            "token_type": {"const": "Bearer"},
                            "expires_in": _INT,
                        },
                    },
                    "A bearer token",
                ),
                "400": _BAD,
                "404": _problem("not_found: not in development"),
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Dependency health (postgres, redis, typesense)",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"status": {"const": "ok"}, "components": {"type": "object"}},
                    },
                    "All reachable",
                ),
                "503": _problem("backend_unavailable, naming what is down in components"),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
        }
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Ticketing catalog API",
        "version": "1.0.0",
        "description": "Browse, view and search events; admin catalog writes. Errors are "
        "RFC 9457 problem documents with a stable code.",
    },
    "servers": [{"url": "http://127.0.0.1:8080"}],
    "paths": PATHS,
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
    },
}


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
