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
