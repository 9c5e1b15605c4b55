"""The OpenAPI 3.1 description of catalog_api's public routes (and the dev token endpoint,
which the waitingroom serves behind the same gateway). A test keeps it in step with the
router."""

from __future__ import annotations

from typing import Any

from aiohttp import web

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
    query_param,
    ref,
)

routes = web.RouteTableDef()


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
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
    },
}


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
