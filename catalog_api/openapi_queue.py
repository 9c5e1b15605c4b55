"""The OpenAPI description of the waiting room's routes (served by the waitingroom)."""

from __future__ import annotations

from typing import Any

from catalog_api.openapi_schemas import (
    BAD,
    BEARER,
    EVENT_ID,
    INT,
    STR,
    TIME,
    json_body,
    problem,
    ref,
)

_NULLABLE_INT = {"type": ["integer", "null"]}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds."}}
_UNAUTHORIZED = problem("unauthorized / invalid_token / token_expired: a bearer token is needed")
_RATE_LIMITED = {
    **problem("rate_limited: too many queue calls from this fan or address"),
    "headers": _RETRY_AFTER,
}
_DOWN = {
    **problem("backend_unavailable: Redis (the queue) is not reachable"),
    "headers": _RETRY_AFTER,
}
_NO_QUEUE = problem("event_not_found: no such event, a malformed id, or no waiting room")
_ADMIN_COMMON = {
    "401": _UNAUTHORIZED,
    "403": problem("forbidden: the token lacks the admin role"),
    "404": _NO_QUEUE,
    "503": _DOWN,
}

QUEUE_SCHEMAS: dict[str, Any] = {
    "QueueStatus": {
        "type": "object",
        "required": [
            "event_id", "status", "position", "ahead", "eta_seconds", "queue_ticket",
        ],
        "properties": {
            "event_id": INT,
            "status": {
                "enum": ["pre_queue", "waiting", "admitted", "paused", "sold_out"],
                "description": "pre_queue: joined before on_sale_at, the order is drawn at "
                "on-sale; paused: an operator paused admission (the place is kept); "
                "sold_out: nothing is left to sell.",
            },
            "position": {
                **_NULLABLE_INT,
                "description": "1 = next to be admitted; 0 once admitted; null in the "
                "pre-queue (not drawn yet) and when sold out.",
            },
            "ahead": {**_NULLABLE_INT, "description": "Fans ahead (position - 1)."},
            "eta_seconds": {
                **_NULLABLE_INT,
                "description": "Estimated wait from the admission rate measured over the last "
                "minute (not the configured one); null while nothing was measured, paused or "
                "in the pre-queue.",
            },
            "queue_ticket": {
                **STR,
                "description": "Signed record of this place. Send it back on join: if the "
                "queue lost its state the place is restored.",
            },
            "admission_token": {
                **STR,
                "description": "When admitted: send as X-Admission-Token to /booking/reserve. "
                "Valid for this fan and event until admission_expires_at.",
            },
            "admission_expires_at": TIME,
            "on_sale_at": TIME,
            "waiting": {**INT, "description": "Fans in this queue (including the pre-queue)."},
            "admit_rate_per_minute": {
                "type": "number",
                "description": "Admissions per minute measured over the last minute.",
            },
        },
    },
    "QueueFigures": {
        "type": "object",
        "required": [
            "event_id", "admit_per_minute", "max_active", "paused", "session_seconds", "mode",
            "waiting", "active", "admitted_total",
        ],
        "properties": {
            "event_id": INT,
            "admit_per_minute": {
                **INT,
                "description": "Admissions per minute (in auto mode, the ceiling).",
            },
            "max_active": {**INT, "description": "Most admitted sessions at once."},
            "paused": {"type": "boolean"},
            "session_seconds": {**INT, "description": "Length of an admission session."},
            "mode": {"enum": ["manual", "auto"]},
            "waiting": INT,
            "active": INT,
            "admitted_total": INT,
            "name": STR,
            "on_sale_at": TIME,
            "pre_queue": {**INT, "description": "Fans in the pre-queue, until the draw."},
            "drawn": {"type": "boolean", "description": "The pre-queue was drawn (on sale)."},
            "sold_out": {"type": "boolean"},
            "effective_admit_per_minute": {
                "type": "number",
                "description": "The rate admitters work to (auto mode's own, capped).",
            },
            "measured_admit_per_minute": {"type": "number"},
            "inventory": {
                "type": ["object", "null"],
                "properties": {"available": INT, "reserved": INT, "booked": INT, "total": INT},
            },
        },
    },
    "QueuePatch": {
        "type": "object",
        "minProperties": 0,
        "additionalProperties": False,
        "properties": {
            "admit_per_minute": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
            "max_active": {"type": "integer", "minimum": 0, "maximum": 10_000_000},
            "paused": {"type": "boolean"},
            "session_seconds": {"type": "integer", "minimum": 1, "maximum": 86_400},
            "mode": {"enum": ["manual", "auto"]},
        },
    },
}


def _status_route(summary: str, *, with_body: bool) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "security": BEARER,
        "parameters": [EVENT_ID],
        "responses": {
            "200": json_body(ref("QueueStatus"), "Where the fan stands"),
            "401": _UNAUTHORIZED,
            "404": _NO_QUEUE,
            "429": _RATE_LIMITED,
            "503": _DOWN,
        },
    }
    if with_body:
        operation["requestBody"] = {
            "required": False,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"queue_ticket": STR},
                    }
                }
            },
        }
        operation["responses"]["400"] = problem(
            "validation_error: malformed body, or a queue_ticket we did not sign or that expired"
        )
        operation["responses"]["403"] = problem(
            "queue_ticket_invalid: the queue ticket is another fan's or another event's"
        )
    else:
        operation["responses"]["404"] = problem(
            "event_not_found / not_in_queue: the fan has not joined, or their session ended"
        )
    return operation


QUEUE_PATHS: dict[str, Any] = {
    "/queue/{event_id}/join": {
        "post": _status_route(
            "Join the event's queue (joining again returns the same place). Before on_sale_at "
            "fans enter the pre-queue, drawn into a random, auditable order at on-sale ahead "
            "of later arrivals, who are served first come, first served.",
            with_body=True,
        )
    },
    "/queue/{event_id}/status": {
        "get": _status_route(
            "The fan's place (for clients that poll; polling or a websocket keeps the place)",
            with_body=False,
        )
    },
    "/queue/{event_id}/leave": {
        "post": {
            "summary": "Give up one's place, or end one's admitted session (the slot goes to "
            "the next fan). Idempotent.",
            "security": BEARER,
            "parameters": [EVENT_ID],
            "responses": {
                "204": {"description": "Out of the queue"},
                "401": _UNAUTHORIZED,
                "404": _NO_QUEUE,
                "503": _DOWN,
            },
        }
    },
    "/queue/{event_id}/ws": {
        "get": {
            "summary": "Websocket of the fan's place. The server pushes "
            '{"type": "status", ...QueueStatus} when the position changes and at least every '
            '5 s; {"type": "admitted", "admission_token", "expires_at"} at once on admission; '
            '{"type": "sold_out"}; {"type": "paused"}; {"type": "session_ended", "reason": '
            "expired|booked|left} (then the socket closes). Every message carries event_id.",
            "parameters": [
                EVENT_ID,
                {
                    "name": "token",
                    "in": "query",
                    "required": True,
                    "schema": STR,
                    "description": "The fan's JWT (browsers cannot set headers on websockets).",
                },
            ],
            "responses": {
                "101": {"description": "Switching to the websocket protocol"},
                "401": _UNAUTHORIZED,
                "403": problem("forbidden_origin: Origin is not this site or an allowed one"),
                "404": problem("event_not_found / not_in_queue: join first"),
                "429": _RATE_LIMITED,
                "503": _DOWN,
            },
        }
    },
    "/queue/{event_id}/fairness": {
        "get": {
            "summary": "The public record of the pre-queue draw: the seed's SHA-256 "
            "commitment before on-sale; after it the seed, the members and the drawn order, "
            "so anyone can recompute it. With a bearer token, also the caller's member id.",
            "parameters": [EVENT_ID],
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "properties": {
                            "event_id": INT,
                            "on_sale_at": TIME,
                            "state": {"enum": ["none", "committed", "drawn"]},
                            "algorithm": STR,
                            "commitment": {"type": ["string", "null"]},
                            "committed_at": {"type": ["string", "null"], "format": "date-time"},
                            "seed": {"type": ["string", "null"]},
                            "revealed_at": {"type": ["string", "null"], "format": "date-time"},
                            "members": {"type": ["array", "null"], "items": STR},
                            "order": {"type": ["array", "null"], "items": STR},
                            "verified": {"type": ["boolean", "null"]},
                            "you": {
                                "type": "object",
                                "properties": {
                                    "member": STR,
                                    "drawn_position": _NULLABLE_INT,
                                },
                            },
                        },
                    },
                    "The draw's record",
                ),
                "404": _NO_QUEUE,
                "503": _DOWN,
            },
        }
    },
    "/admin/queues": {
        "get": {
            "summary": "Every queue-enabled event with its queue figures (the console's list)",
            "security": BEARER,
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "properties": {
                            "items": {"type": "array", "items": ref("QueueFigures")},
                            "booking_health": {
                                "type": ["object", "null"],
                                "description": "What auto mode last measured.",
                                "properties": {
                                    "backlog": _NULLABLE_INT,
                                    "reserve_latency_ms": {"type": ["number", "null"]},
                                    "at": {"type": "number"},
                                },
                            },
                        },
                    },
                    "The queues",
                ),
                "401": _UNAUTHORIZED,
                "403": problem("forbidden: the token lacks the admin role"),
                "503": _DOWN,
            },
        }
    },
    "/admin/queues/{event_id}": {
        "get": {
            "summary": "One queue's settings and figures",
            "security": BEARER,
            "parameters": [EVENT_ID],
            "responses": {"200": json_body(ref("QueueFigures"), "The queue"), **_ADMIN_COMMON},
        },
        "patch": {
            "summary": "Change a queue's settings (any of them); in force in every process "
            "within 2 s. mode auto steers the rate (up to admit_per_minute) from the booking "
            "backlog, reserve latency and remaining seats.",
            "security": BEARER,
            "parameters": [EVENT_ID],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("QueuePatch")}},
            },
            "responses": {
                "200": json_body(ref("QueueFigures"), "The queue as changed"),
                "400": BAD,
                **_ADMIN_COMMON,
            },
        },
    },
}
