"""deploy/openapi.json, which the gateway serves, is what the services' declarations say."""

from __future__ import annotations

import json

from deploy import openapi


def test_the_gateway_document_is_the_merge_of_the_services_documents() -> None:
    assert openapi.main(["--check"]) == 0, "run: .venv/bin/python -m deploy.openapi"


def test_the_document_on_disk_is_valid_json_with_every_service() -> None:
    doc = json.loads(openapi.FILE.read_text())
    assert doc["openapi"].startswith("3.1")
    paths = set(doc["paths"])
    assert {"/events", "/search", "/queue/{event_id}/join", "/booking/reserve"} <= paths


def test_every_operation_documents_what_the_gateway_answers_itself() -> None:
    doc = openapi.merged_document()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"400", "413", "414", "431", "502", "504"} <= set(responses), (path, method)
            # A status the route declares itself gains the gateway's code beside its own.
            refused = responses["400"]["content"]["application/problem+json"]["schema"]
            codes = next(p for p in refused["allOf"] if "properties" in p)
            assert "bad_request" in codes["properties"]["code"]["enum"], (path, method)
