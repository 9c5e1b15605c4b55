"""The OpenAPI document describes exactly the routes catalog_api serves (plus the dev token
endpoint the waitingroom serves), so it cannot drift from the code."""

from __future__ import annotations

from catalog_api.app import create_app
from tests.integration.test_catalog_support import get_json

pytest_plugins = ["tests.integration.test_catalog_support"]

EXTERNAL = {("/auth/dev-token", "POST")}
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
    assert documented == registered_routes(create_app(catalog_settings)) | EXTERNAL


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
