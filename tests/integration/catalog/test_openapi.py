"""The gateway's OpenAPI document (deploy/openapi.py, the services' documents merged)
describes exactly the routes catalog_api and the waitingroom serve, so it cannot drift from
the code; each service answers its own document; and the booking routes carry the headers,
statuses and problem codes their clients rely on. (That every reply matches the document
is checked on every test's replies: tests/contract.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from catalog_api import openapi as catalog_openapi
from catalog_api.app import create_app
from deploy.openapi import GATEWAY_REPLIES, merged_document
from tests.integration.booking.support import open_client
from ticketing.config import Settings
from waitingroom import openapi as waitingroom_openapi
from waitingroom.app import create_app as create_waitingroom_app

UNDOCUMENTED = {"/metrics"}  # scraped on the service's own port, not routed by the gateway
PLATFORM = {("/healthz", "GET"), ("/openapi.json", "GET")}
BOOKING = {
    ("/booking/reserve", "POST"),
    ("/booking/confirm", "POST"),
    ("/booking/holds/{hold_id}", "DELETE"),
    ("/booking/{ticket_id}", "GET"),
    ("/bookings/{booking_id}", "GET"),
    ("/me/bookings", "GET"),
    ("/webhooks/stripe", "POST"),
}
PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return merged_document()


def served(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.resource.canonical, route.method)
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and route.resource.canonical not in UNDOCUMENTED
    }


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in document["paths"].items() for method in item}


def differences(listed: set[tuple[str, str]], routes: set[tuple[str, str]]) -> str:
    return (
        f"served, undocumented: {sorted(routes - listed)}; "
        f"documented, not served: {sorted(listed - routes)}"
    )


def test_the_document_lists_exactly_the_routes_the_services_serve(
    doc: dict[str, Any], catalog_settings: Settings
) -> None:
    assert doc["openapi"].startswith("3.1")
    routes = served(create_app(catalog_settings))
    routes |= served(create_waitingroom_app(catalog_settings))
    assert ("/auth/dev-token", "POST") in routes  # the test settings are dev
    assert routes >= BOOKING
    assert documented(doc) == routes, differences(documented(doc), routes)


def test_the_booking_front_door_serves_the_booking_routes_alone(
    doc: dict[str, Any], catalog_settings: Settings
) -> None:
    routes = served(create_waitingroom_app(catalog_settings, "booking"))
    assert routes == BOOKING | PLATFORM, differences(BOOKING | PLATFORM, routes)
    assert routes <= documented(doc)
    own = waitingroom_openapi.build_document("booking")
    assert documented(own) == routes, differences(documented(own), routes)


def as_json(document: dict[str, Any]) -> Any:
    return json.loads(json.dumps(document))


async def test_each_service_answers_its_own_document(
    client: TestClient[web.Request, web.Application],
    booking_settings: Settings,
    doc: dict[str, Any],
) -> None:
    """catalog_api's, the waitingroom's and a front door's; none the gateway's merge (nginx
    serves that one from deploy/openapi.json)."""
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    catalog = await resp.json()
    assert catalog == as_json(catalog_openapi.build_document())
    assert catalog != as_json(doc)
    waitingroom = await open_client(booking_settings)
    front_door = TestClient(TestServer(create_waitingroom_app(booking_settings, "booking")))
    await front_door.start_server()
    try:
        for app_client, role in ((waitingroom, "all"), (front_door, "booking")):
            resp = await app_client.get("/openapi.json")
            assert resp.status == 200, role
            own = await resp.json()
            assert own == as_json(waitingroom_openapi.build_document(role)), role
            assert own != as_json(doc), role
    finally:
        await waitingroom.close()
        await front_door.close()


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    target = schema.get("$ref")
    if target is None:
        return schema
    return resolve(doc, doc["components"]["schemas"][target.rsplit("/", 1)[1]])


def problem_parts(doc: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    """A problem reply's schema, each part of its ``allOf`` resolved."""
    schema = response["content"][PROBLEM_JSON]["schema"]
    return [resolve(doc, part) for part in schema.get("allOf", [schema])]


def codes(doc: dict[str, Any], response: dict[str, Any]) -> set[str]:
    """The ``code``s a problem reply may carry, as its schema's enum lists them."""
    found: set[str] = set()
    for part in problem_parts(doc, response):
        found.update(part.get("properties", {}).get("code", {}).get("enum", ()))
    return found


def problem_responses(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in doc["paths"].values():
        for operation in item.values():
            for response in operation["responses"].values():
                if PROBLEM_JSON in response.get("content", {}):
                    yield response


BOOKING_STATUSES = {
    ("/booking/reserve", "post"): {
        "201",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "422",
        "429",
        "503",
    },
    ("/booking/confirm", "post"): {
        "201",
        "400",
        "401",
        "402",
        "403",
        "404",
        "409",
        "413",
        "429",
        "503",
    },
    ("/booking/holds/{hold_id}", "delete"): {
        "204",
        "400",
        "401",
        "403",
        "404",
        "409",
        "429",
        "503",
    },
    ("/booking/{ticket_id}", "get"): {"200", "401", "404", "429", "503"},
    ("/bookings/{booking_id}", "get"): {"200", "401", "404", "429", "503"},
    ("/me/bookings", "get"): {"200", "400", "401", "429", "503"},
}


def test_booking_routes_carry_their_headers_statuses_and_problems(doc: dict[str, Any]) -> None:
    paths = doc["paths"]

    def headers(path: str, method: str) -> set[str]:
        params = paths[path][method].get("parameters", [])
        return {p["name"] for p in params if p["in"] == "header"}

    assert headers("/booking/reserve", "post") == {"X-Admission-Token", "Idempotency-Key"}
    assert "Idempotency-Key" in headers("/booking/confirm", "post")
    assert "Stripe-Signature" in headers("/webhooks/stripe", "post")
    # Besides its own, every route may get what the gateway answers itself.
    gateway = {str(reply.status) for reply in GATEWAY_REPLIES}
    for (path, method), statuses in BOOKING_STATUSES.items():
        operation = paths[path][method]
        assert set(operation["responses"]) == statuses | gateway, (path, method)
        assert operation["security"] == [{"bearer": []}], path
    assert "security" not in paths["/webhooks/stripe"]["post"]  # Stripe signs instead
    reserve = paths["/booking/reserve"]["post"]["responses"]
    assert codes(doc, reserve["403"]) == {"admission_required", "admission_invalid"}
    conflict = problem_parts(doc, reserve["409"])
    assert any("unavailable_ticket_ids" in part.get("properties", {}) for part in conflict)


RAISED_CODES = {
    "validation_error",
    "event_not_found",
    "backend_unavailable",
    "venue_not_found",
    "performer_not_found",
    "currency_locked",
    "unauthorized",
    "invalid_token",
    "token_expired",
    "forbidden",
    "payload_too_large",
    "admission_required",
    "admission_invalid",
    "not_your_hold",
    "hold_not_found",
    "booking_not_found",
    "ticket_not_found",
    "tickets_unavailable",
    "hold_expired",
    "hold_confirmed",
    "payment_failed",
    "payment_in_progress",
    "not_on_sale",
    "limit_exceeded",
    "rate_limited",
    "invalid_signature",
}


def test_every_error_code_we_raise_is_listed_by_some_problem_reply(doc: dict[str, Any]) -> None:
    listed = set().union(*(codes(doc, response) for response in problem_responses(doc)))
    assert sorted(RAISED_CODES - listed) == []


def test_every_reference_names_a_schema_of_the_document(doc: dict[str, Any]) -> None:
    refs = {v for v in _walk(doc) if isinstance(v, str) and v.startswith("#/components/")}
    assert {r.rsplit("/", 1)[1] for r in refs} <= set(doc["components"]["schemas"])


def _walk(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)
    else:
        yield node
