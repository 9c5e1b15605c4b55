"""The OpenAPI description of the two HTML pages the waitingroom serves and their assets."""

from __future__ import annotations

from typing import Any

from catalog_api.openapi_schemas import EVENT_ID, STR, problem


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": STR}}}


_NOT_MODIFIED = {"description": "Unchanged since the ETag sent in If-None-Match"}

PAGE_PATHS: dict[str, Any] = {
    "/queue/{event_id}": {
        "get": {
            "summary": "The fans' queue page (HTML, no token needed to load it): position, "
            "people ahead, estimated wait and progress, live over the websocket; then seat "
            "selection and a test-mode checkout once admitted. ?user= picks the development "
            "user whose token it uses.",
            "parameters": [EVENT_ID],
            "responses": {
                "200": _html("The page"),
                "304": _NOT_MODIFIED,
                "404": problem("event_not_found: a malformed event id"),
            },
        }
    },
    "/admin": {
        "get": {
            "summary": "The operators' console (HTML, no token needed to load it; its calls "
            "need the admin role): live queue length, active sessions, admission rate and "
            "inventory per event, and the queue controls.",
            "responses": {"200": _html("The page"), "304": _NOT_MODIFIED},
        }
    },
    "/static/{name}": {
        "get": {
            "summary": "The pages' scripts and style sheet",
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": STR},
            ],
            "responses": {
                "200": {
                    "description": "The file",
                    "content": {"text/css": {"schema": STR}, "text/javascript": {"schema": STR}},
                },
                "304": _NOT_MODIFIED,
                "404": problem("not_found"),
            },
        }
    },
}
