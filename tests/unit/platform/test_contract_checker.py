"""The checker that holds every reply of the integration and end-to-end tests to the OpenAPI
document (tests/contract): a reply as documented passes, and each way a reply can differ
from the document is caught. These are its controls: without them a checker that never
fails would look the same as a suite whose replies all conform."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.contract import capture
from tests.contract.checker import Contract, Violation
from ticketing.metrics import SERVICE_KEY

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def problem_of(*codes: str) -> dict[str, Any]:
    return {
        "content": {
            "application/problem+json": {
                "schema": {"allOf": [PROBLEM, {"properties": {"code": {"enum": list(codes)}}}]}
            }
        }
    }


def json_of(name: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{name}"}
    return {"content": {"application/json": {"schema": schema}}}


# Shaped like the documents ticketing/api renders: exact replies, problems with their codes.
DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "paths": {
        "/things/{thing_id}": {
            "get": {"responses": {"200": json_of("Thing"), "404": problem_of("thing_not_found")}},
            "delete": {"responses": {"204": {"description": "Gone"}}},
        },
        "/things/newest": {"get": {"responses": {"200": json_of("Newest")}}},
    },
    "components": {
        "schemas": {
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail", "code"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "code": {"type": "string"},
                },
                "additionalProperties": True,
            },
            "Thing": {
                "type": "object",
                "required": ["id", "name", "made_at"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "made_at": {"type": "string", "format": "date-time"},
                    "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                },
                "additionalProperties": False,
            },
            "Tag": {
                "type": "object",
                "required": ["label"],
                "properties": {"label": {"type": "string"}},
                "additionalProperties": False,
            },
            "Newest": {
                "type": "object",
                "required": ["newest"],
                "properties": {"newest": {"type": "boolean"}},
                "additionalProperties": False,
            },
        }
    },
}
THING = {"id": 7, "name": "lamp", "made_at": "2031-06-01T18:00:00Z", "tags": [{"label": "a"}]}
NOT_FOUND = {
    "type": "https://ticketing.example/problems/thing_not_found",
    "title": "Not Found",
    "status": 404,
    "detail": "No such thing.",
    "code": "thing_not_found",
}


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract(DOCUMENT)


def check(
    contract: Contract,
    status: int,
    body: object,
    *,
    method: str = "GET",
    path: str = "/things/7",
    content_type: str | None = "application/json",
) -> list[Violation]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return contract.check(method, path, status, content_type, raw)


def only(violations: list[Violation]) -> str:
    assert len(violations) == 1, violations
    return violations[0].what


def test_replies_as_documented_pass(contract: Contract) -> None:
    assert check(contract, 200, THING) == []
    assert check(contract, 200, THING, content_type="application/json; charset=utf-8") == []
    assert check(contract, 200, THING, path="/things/7?fields=all") == []
    assert check(contract, 404, NOT_FOUND, content_type="application/problem+json") == []
    assert check(contract, 204, b"", method="DELETE") == []


def test_a_literal_segment_is_matched_before_a_parameter(contract: Contract) -> None:
    assert check(contract, 200, {"newest": True}, path="/things/newest") == []
    assert contract.operation("GET", "/things/newest") is not None
    assert contract.operation("DELETE", "/things/newest") == (
        "/things/{thing_id}",
        DOCUMENT["paths"]["/things/{thing_id}"]["delete"],
    )


def test_an_undocumented_path_or_method_is_caught(contract: Contract) -> None:
    assert "not documented" in only(check(contract, 200, THING, path="/gadgets/7"))
    assert "not documented" in only(check(contract, 200, THING, method="PUT"))
    assert "not documented" in only(check(contract, 200, THING, path="/things/"))


def test_metrics_are_not_public_and_not_checked(contract: Contract) -> None:
    assert (
        check(contract, 200, b"# TYPE x counter", path="/metrics", content_type="text/plain") == []
    )


def test_an_undocumented_status_is_caught(contract: Contract) -> None:
    what = only(check(contract, 500, NOT_FOUND, content_type="application/problem+json"))
    assert "status 500 is not documented" in what and "200, 404" in what


def test_a_wrong_content_type_is_caught(contract: Contract) -> None:
    assert "content type 'text/plain'" in only(
        check(contract, 200, THING, content_type="text/plain")
    )
    assert "content type" in only(check(contract, 404, NOT_FOUND))
    assert "content type" in only(check(contract, 200, THING, content_type=None))


def test_a_body_where_none_is_documented_is_caught(contract: Contract) -> None:
    assert "describes none" in only(check(contract, 204, {"gone": True}, method="DELETE"))


def test_a_body_that_is_not_json_is_caught(contract: Contract) -> None:
    assert "not JSON" in only(check(contract, 200, b"<html>lamp</html>"))


def test_an_extra_field_is_caught_at_any_depth(contract: Contract) -> None:
    assert "'colour' was unexpected" in only(check(contract, 200, {**THING, "colour": "red"}))
    nested = {**THING, "tags": [{"label": "a", "weight": 2}]}
    assert "at tags/0:" in only(check(contract, 200, nested))


def test_a_wrong_type_or_a_missing_field_is_caught(contract: Contract) -> None:
    assert "'7' is not of type 'integer'" in only(check(contract, 200, {**THING, "id": "7"}))
    del_name = {k: v for k, v in THING.items() if k != "name"}
    assert "'name' is a required property" in only(check(contract, 200, del_name))


def test_a_problem_code_the_status_does_not_list_is_caught(contract: Contract) -> None:
    wrong = {**NOT_FOUND, "code": "not_found"}
    what = only(check(contract, 404, wrong, content_type="application/problem+json"))
    assert "'not_found' is not one of ['thing_not_found']" in what


def test_the_report_names_the_request_and_shows_the_body(contract: Contract) -> None:
    (violation,) = check(contract, 200, {**THING, "id": "7"})
    text = str(violation)
    assert text.startswith("GET /things/7 -> 200: schema: at id:")
    assert '"name": "lamp"' in text


def test_an_exemption_covers_the_requests_it_names_and_no_others(contract: Contract) -> None:
    (unknown,) = check(contract, 404, NOT_FOUND, path="/gadgets/7?x=1")
    (wrong,) = check(contract, 200, {**THING, "id": "7"})
    named = pytest.mark.contract_exempt("asks for a gadget", requests=["GET /gadgets/*"]).mark
    everything = pytest.mark.contract_exempt("sends what no route takes").mark
    assert capture.excused(unknown, named) and not capture.excused(wrong, named)
    assert capture.excused(unknown, everything) and capture.excused(wrong, everything)
    assert not capture.excused(unknown, None)


def test_the_merged_document_holds_a_platform_reply() -> None:
    """The real document: its references resolve and its declared replies are exact."""
    from deploy.openapi import merged_document

    merged = Contract(merged_document())
    health = {"status": "ok", "components": {"redis": "ok"}}
    assert check(merged, 200, health, path="/healthz") == []
    assert "'uptime' was unexpected" in only(
        check(merged, 200, {**health, "uptime": 3}, path="/healthz")
    )


async def test_a_services_test_server_hands_every_reply_to_the_record(
    contract: Contract, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook the integration tests rely on: a documented service's application, started
    by a TestServer, has its replies checked (aiohttp's own 404 included); a test's probe
    application is not held to the document."""

    async def teapot(request: web.Request) -> web.Response:
        return web.json_response({"tea": True}, status=418)

    def app_of(service: str) -> web.Application:
        app = web.Application()
        app[SERVICE_KEY] = service
        app.router.add_get("/things/{thing_id}", teapot)
        return app

    monkeypatch.setattr(capture, "contract", lambda: contract)
    capture.install()
    capture.RECORD.start()
    try:
        for service in ("catalog_api", "probe"):
            async with TestClient(TestServer(app_of(service))) as client:
                assert (await client.get("/things/7")).status == 418
                assert (await client.get("/nowhere")).status == 404
    finally:
        found = capture.RECORD.stop()
    assert [(v.path, v.status) for v in found] == [("/things/7", 418), ("/nowhere", 404)]
    assert "status 418 is not documented" in found[0].what
