"""The OpenAPI document describes exactly the routes catalog_api and the waitingroom serve
behind the gateway, so it cannot drift from the code."""

from __future__ import annotations

from catalog_api.app import create_app
from tests.integration.catalog.support import get_json
from waitingroom.app import create_app as create_waitingroom_app

UNDOCUMENTED = {"/metrics"}  # scraped on the service's own port, not routed by the gateway


def registered_routes(app) -> set[tuple[str, str]]:
    return {
        (route.resource.canonical, route.method)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource.canonical not in UNDOCUMENTED
    }


async def test_openapi_paths_match_the_router(client, catalog_settings) -> None:
    status, doc = await get_json(client, "/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
    served = registered_routes(create_app(catalog_settings))
    served |= registered_routes(create_waitingroom_app(catalog_settings))
    assert ("/auth/dev-token", "POST") in served  # the test settings are dev
    assert ("/booking/reserve", "POST") in served
    assert documented == served, (
        f"undocumented: {sorted(served - documented)}; "
        f"documented but not served: {sorted(documented - served)}"
    )


async def test_openapi_booking_routes_carry_their_headers_and_problems(client) -> None:
    _, doc = await get_json(client, "/openapi.json")
    paths = doc["paths"]

    def headers(path: str, method: str) -> set[str]:
        params = paths[path][method].get("parameters", [])
        return {p["name"] for p in params if p["in"] == "header"}

    assert headers("/booking/reserve", "post") == {"X-Admission-Token", "Idempotency-Key"}
    assert "Idempotency-Key" in headers("/booking/confirm", "post")
    assert "Stripe-Signature" in headers("/webhooks/stripe", "post")
    expected = {
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
    for (path, method), statuses in expected.items():
        operation = paths[path][method]
        assert set(operation["responses"]) == statuses, (path, method)
        if path != "/webhooks/stripe":
            assert operation["security"] == [{"bearer": []}], path
    reserve = paths["/booking/reserve"]["post"]["responses"]
    assert "admission_required" in reserve["403"]["description"]
    assert "admission_invalid" in reserve["403"]["description"]
    conflict = reserve["409"]["content"]["application/problem+json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][conflict.rsplit("/", 1)[1]]
    assert "unavailable_ticket_ids" in str(schema)


async def test_openapi_documents_every_error_code_we_raise(client) -> None:
    _, doc = await get_json(client, "/openapi.json")
    text = str(doc)
    for code in (
        "validation_error",
        "event_not_found",
        "backend_unavailable",
        "venue_not_found",
        "performer_not_found",
        "currency_locked",
        "forbidden",
        "admission_required",
        "admission_invalid",
        "not_your_hold",
        "hold_not_found",
        "booking_not_found",
        "ticket_not_found",
        "tickets_unavailable",
        "unavailable_ticket_ids",
        "hold_expired",
        "hold_confirmed",
        "payment_failed",
        "payment_in_progress",
        "not_on_sale",
        "limit_exceeded",
        "rate_limited",
        "invalid_signature",
    ):
        assert code in text, code
    refs = {v for v in _walk(doc) if isinstance(v, str) and v.startswith("#/components/")}
    schemas = doc["components"]["schemas"]
    assert {r.rsplit("/", 1)[1] for r in refs} <= set(schemas)


def _walk(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)
    else:
        yield node
