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
    query_param,
    ref,
)

_NULLABLE_INT = {"type": ["integer", "null"]}
_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
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
            "event_id",
            "status",
            "position",
            "ahead",
            "eta_seconds",
            "queue_ticket",
        ],
        "properties": {
            "event_id": INT,
            "status": {
                "enum": ["pre_queue", "waiting", "all_held", "admitted", "paused", "sold_out"],
                "description": "pre_queue: joined before on_sale_at, the order is drawn at "
                "on-sale; all_held: every remaining seat is in another fan's hold, the fan "
                "keeps the place and may still get in if holds expire or are released; "
                "paused: an operator paused admission (the place is kept); sold_out: nothing "
                "is left to sell (nothing available, nothing held): admitted fans' sessions "
                "end too, and should seats come back the line moves again in order.",
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
                "minute (not the configured one); null while nothing was measured, paused, "
                "all_held or in the pre-queue.",
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
            "event_id",
            "admit_per_minute",
            "max_active",
            "paused",
            "session_seconds",
            "mode",
            "claim_seconds",
            "admission_margin_percent",
            "waiting",
            "active",
            "admitted_total",
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
            "claim_seconds": {
                **INT,
                "description": "Claim window: an admitted fan who holds no seats this long "
                "after admission loses the admission to the next fan.",
            },
            "admission_margin_percent": {
                **INT,
                "description": "Fans admitted but not yet holding, times the seats a fan "
                "takes on average (measured), stay within the seats left plus this share.",
            },
            "waiting": INT,
            "active": INT,
            "admitted_total": INT,
            "name": STR,
            "on_sale_at": TIME,
            "pre_queue": {**INT, "description": "Fans in the pre-queue, until the draw."},
            "drawn": {"type": "boolean", "description": "The pre-queue was drawn (on sale)."},
            "sold_out": {"type": "boolean"},
            "all_held": {
                "type": "boolean",
                "description": "Every seat left is in a hold: nobody is admitted meanwhile.",
            },
            "unclaimed": {**INT, "description": "Admitted fans holding no seats yet."},
            "seats_per_fan": {
                "type": ["number", "null"],
                "description": "Seats a fan took on average in this event's holds (null "
                "until one was made; admission assumes 2 until then).",
            },
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
    "QueueFairness": {
        "type": "object",
        "required": [
            "event_id",
            "on_sale_at",
            "state",
            "algorithm",
            "epoch",
            "commitment",
            "committed_at",
            "superseded",
            "seed",
            "revealed_at",
            "total",
            "order_sha256",
            "offset",
            "limit",
            "order",
            "members",
            "next",
            "verified",
        ],
        "properties": {
            "event_id": INT,
            "on_sale_at": TIME,
            "state": {"enum": ["none", "committed", "drawn"]},
            "algorithm": {**STR, "description": "How to recompute everything below."},
            "epoch": {
                **_NULLABLE_INT,
                "description": "1, or more if the room had to commit to a new seed.",
            },
            "commitment": _NULLABLE_STR,
            "committed_at": _NULLABLE_TIME,
            "superseded": {
                "type": "array",
                "description": "Earlier commitments whose seed was lost with the queue "
                "before the draw (never revealed), oldest first.",
                "items": {
                    "type": "object",
                    "properties": {
                        "epoch": INT,
                        "commitment": STR,
                        "committed_at": TIME,
                        "superseded_at": TIME,
                    },
                },
            },
            "seed": _NULLABLE_STR,
            "revealed_at": _NULLABLE_TIME,
            "total": {**_NULLABLE_INT, "description": "Members drawn (the whole order)."},
            "order_sha256": {
                **_NULLABLE_STR,
                "description": "SHA-256 (hex) of the whole order's members joined by '\\n'.",
            },
            "offset": INT,
            "limit": INT,
            "order": {
                "type": ["array", "null"],
                "items": STR,
                "description": "Drawn positions offset+1 .. offset+limit, first drawn first.",
            },
            "members": {
                "type": ["array", "null"],
                "items": STR,
                "description": "The same page of the members sorted ascending.",
            },
            "next": {
                **_NULLABLE_STR,
                "description": "Path of the next page; null on the last.",
            },
            "verified": {
                "type": ["boolean", "null"],
                "description": "Checked by the server over the whole order: the seed matches "
                "the commitment, the order is sorted by the seed, total and order_sha256 "
                "match.",
            },
            "you": {
                "type": "object",
                "description": "With a bearer token only.",
                "properties": {"member": STR, "drawn_position": _NULLABLE_INT},
            },
        },
    },
    "QueueSeries": {
        "type": "object",
        "required": ["event_id", "window_seconds", "samples"],
        "properties": {
            "event_id": INT,
            "window_seconds": {**INT, "description": "How far back the samples go (900)."},
            "samples": {
                "type": "array",
                "description": "Oldest first, about one a second (taken right after the "
                "once-a-second inventory count); a gap means nobody counted then.",
                "items": ref("QueueSample"),
            },
        },
    },
    "QueueSample": {
        "type": "object",
        "required": [
            "at_ms",
            "waiting",
            "pre_queue",
            "active",
            "admitted_total",
            "effective_admit_per_minute",
            "measured_admit_per_minute",
            "available",
            "reserved",
            "booked",
            "seats_held_total",
            "unclaimed",
            "seats_held_per_second",
            "seats_sold_per_second",
        ],
        "properties": {
            "at_ms": {**INT, "description": "When it was taken (Unix time, ms)."},
            "waiting": INT,
            "pre_queue": INT,
            "active": {**INT, "description": "Admitted sessions running."},
            "admitted_total": INT,
            "effective_admit_per_minute": {
                "type": "number",
                "description": "The admission rate in force (auto mode's own, capped).",
            },
            "measured_admit_per_minute": {
                "type": "number",
                "description": "Admissions per minute made over the last minute.",
            },
            "available": {**INT, "description": "Seats left to sell."},
            "reserved": {**INT, "description": "Seats in fans' holds."},
            "booked": {**INT, "description": "Seats sold."},
            "seats_held_total": {
                **INT,
                "description": "Seats held by 201 reserves so far (the count admission "
                "uses: every hold adds its seats as it is made).",
            },
            "unclaimed": {**INT, "description": "Admitted fans holding no seats yet."},
            "seats_held_per_second": {
                "type": ["number", "null"],
                "description": "Seats held per second over the last 5 s (gross: holds that "
                "ended meanwhile still count); null without an earlier sample.",
            },
            "seats_sold_per_second": {
                "type": ["number", "null"],
                "description": "Seats booked per second over the last 5 s (from booked; 0 "
                "when refunds outweigh sales); null without an earlier sample.",
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
            "claim_seconds": {"type": "integer", "minimum": 1, "maximum": 86_400},
            "admission_margin_percent": {"type": "integer", "minimum": 0, "maximum": 1000},
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
            '{"type": "sold_out"} within a second of the sell-out (to admitted fans too, '
            "whose sessions end; the socket stays open and the status follows, should seats "
            'come back); a status at once when all_held starts or ends; {"type": "paused"} '
            'at once on a pause and {"type": "resumed"} at once when it ends (the full '
            'status follows within 5 s); {"type": "session_ended", "reason": '
            "expired|booked|left|unclaimed} (then the socket closes; unclaimed: no seats "
            "held within the claim window). Every message carries event_id.",
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
            "summary": "The public record of the pre-queue draw, kept in PostgreSQL (it "
            "outlives the queue in Redis): the seed's SHA-256 commitment before on-sale; after "
            "it the seed and the drawn order a page at a time, with order_sha256 over the "
            "whole order, so anyone can fetch every page and recompute the draw. A draw once "
            "recorded is final: if Redis loses the queue after it, the fans are put back in "
            "the recorded order, never drawn again. If Redis loses the secret seed before "
            "on-sale, the room commits to a new one (epoch + 1) and the lost commitment is "
            "listed in superseded. With a bearer token, also the caller's member id and "
            "drawn position.",
            "parameters": [
                EVENT_ID,
                query_param(
                    "offset",
                    {"type": "integer", "minimum": 0, "default": 0},
                    "Drawn members to skip (order and members pages start there).",
                ),
                query_param(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000},
                    "Page size.",
                ),
            ],
            "responses": {
                "200": json_body(ref("QueueFairness"), "The draw's record"),
                "400": problem("validation_error: offset or limit not an integer in range"),
                "404": _NO_QUEUE,
                "503": problem(
                    "backend_unavailable: the record (PostgreSQL), or before on-sale the queue "
                    "(Redis), is not reachable"
                ),
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
    "/admin/queues/{event_id}/series": {
        "get": {
            "summary": "A queue's last 15 minutes, a sample a second, for the console's "
            "charts: waiting, active, the admission rate, seats held and sold per second, "
            "seats left",
            "security": BEARER,
            "parameters": [
                EVENT_ID,
                query_param(
                    "since_ms",
                    {"type": "integer", "minimum": 0, "default": 0},
                    "Only the samples taken after this time (Unix ms): what is new since "
                    "the last call.",
                ),
            ],
            "responses": {
                "200": json_body(ref("QueueSeries"), "The samples"),
                "400": problem("validation_error: since_ms is not a whole number in range"),
                **_ADMIN_COMMON,
            },
        }
    },
}
