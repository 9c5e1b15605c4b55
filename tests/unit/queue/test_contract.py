"""The queue room's declared contract without servers: the PATCH body's model is the one
place its bounds live, its refusals name their field, and every route the app serves is
in the document."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from ticketing.api import document
from ticketing.api.validate import refusal
from ticketing.config import Settings
from ticketing.domain.queue import QueueConfig
from waitingroom.app import create_app
from waitingroom.queue.admin_shapes import QueuePatch
from waitingroom.queue.contract import QUEUE_APIS
from waitingroom.queue.shapes import QueueJoinBody

CONFIG = QueueConfig(60, 100, False, 600, "manual")


def patched(raw: bytes) -> QueueConfig:
    return dataclasses.replace(CONFIG, **QueuePatch.model_validate_json(raw).changes())


def test_operator_patch_changes_only_what_it_names():
    assert patched(b'{"paused": true}') == QueueConfig(60, 100, True, 600, "manual")
    assert patched(b'{"admit_per_minute": 0, "mode": "auto"}').mode == "auto"
    assert patched(b"{}") == CONFIG
    window = patched(b'{"claim_seconds": 30, "admission_margin_percent": 0}')
    assert (window.claim_seconds, window.admission_margin_percent) == (30, 0)
    assert window.to_json()["claim_seconds"] == 30 and window.session_seconds == 600
    edges = b'{"admit_per_minute": 1000000, "max_active": 10000000, "session_seconds": 86400}'
    assert patched(edges).max_active == 10_000_000


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (b'{"admit_per_minute": -1}', "admit_per_minute", "admit_per_minute must be at least 0."),
        (b'{"admit_per_minute": "60"}', "admit_per_minute", "admit_per_minute must be an integer."),
        (b'{"admit_per_minute": true}', "admit_per_minute", "admit_per_minute must be an integer."),
        (b'{"admit_per_minute": 1.5}', "admit_per_minute", "admit_per_minute must be an integer."),
        (b'{"admit_per_minute": null}', "admit_per_minute", "admit_per_minute must be an integer."),
        (b'{"max_active": 1000000000}', "max_active", "max_active must be at most 10000000."),
        (b'{"session_seconds": 0}', "session_seconds", "session_seconds must be at least 1."),
        (b'{"paused": "yes"}', "paused", "paused must be true or false."),
        (b'{"paused": 1}', "paused", "paused must be true or false."),
        (b'{"mode": "turbo"}', "mode", "mode must be one of 'manual' or 'auto'."),
        (b'{"speed": 3}', "speed", "speed is not a known field."),
        (b'{"claim_seconds": 0}', "claim_seconds", "claim_seconds must be at least 1."),
        (b'{"claim_seconds": 86401}', "claim_seconds", "claim_seconds must be at most 86400."),
        (
            b'{"admission_margin_percent": 1001}',
            "admission_margin_percent",
            "admission_margin_percent must be at most 1000.",
        ),
    ],
)
def test_operator_patch_refuses_bad_values_naming_the_field(raw, field, message):
    with pytest.raises(ValidationError) as caught:
        QueuePatch.model_validate_json(raw)
    problem = refusal(caught.value.errors(include_url=False), "body")
    assert (problem.status, problem.code, problem.detail) == (400, "validation_error", message)
    assert problem.extra["field"] == field
    assert problem.extra["errors"] == [{"in": "body", "name": field, "message": message}]


def test_the_patch_body_shows_its_bounds_and_no_defaults():
    doc = document("Queue", "test", QUEUE_APIS)
    schema = doc["components"]["schemas"]["QueuePatch"]
    assert schema["additionalProperties"] is False and "required" not in schema
    assert schema["properties"]["admit_per_minute"] == {
        "description": "Admissions per minute (in auto mode, the ceiling).",
        "type": "integer",
        "minimum": 0,
        "maximum": 1_000_000,
    }
    assert schema["properties"]["mode"]["enum"] == ["manual", "auto"]
    assert not any("default" in prop for prop in schema["properties"].values())
    # The figures a reply shows are not bounded by what an operator may set.
    assert "maximum" not in doc["components"]["schemas"]["QueueFigures"]["properties"]["max_active"]


def test_every_queue_route_the_app_serves_is_declared():
    doc = document("Queue", "test", QUEUE_APIS)
    declared = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    app = create_app(Settings(env="dev"))
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and route.resource.canonical.startswith(("/queue", "/admin", "/static"))
    }
    assert served == declared


def test_each_route_lists_the_refusals_its_steps_give():
    paths = document("Queue", "test", QUEUE_APIS)["paths"]

    def statuses(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert statuses("/queue/{event_id}/join", "post") == {
        "200", "400", "401", "403", "404", "413", "429", "503",
    }  # fmt: skip
    assert statuses("/queue/{event_id}/ws", "get") == {"101", "401", "403", "404", "429", "503"}
    assert statuses("/admin/queues/{event_id}", "patch") == {
        "200", "400", "401", "403", "404", "413", "429", "503",
    }  # fmt: skip
    join = paths["/queue/{event_id}/join"]["post"]
    assert join["requestBody"]["required"] is False
    assert join["security"] == [{"bearer": []}]
    assert "security" not in paths["/queue/{event_id}/fairness"]["get"]
    status_404 = paths["/queue/{event_id}/status"]["get"]["responses"]["404"]
    codes = status_404["content"]["application/problem+json"]["schema"]["allOf"][1]
    assert codes == {"properties": {"code": {"enum": ["event_not_found", "not_in_queue"]}}}
    limited = paths["/queue/{event_id}/status"]["get"]["responses"]["429"]
    assert "Retry-After" in limited["headers"]
    assert "ETag" in paths["/queue/{event_id}"]["get"]["responses"]["200"]["headers"]
    series = {p["name"]: p for p in paths["/admin/queues/{event_id}/series"]["get"]["parameters"]}
    assert series["since_ms"]["schema"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 2**53,
        "default": 0,
    }


def test_a_join_body_may_be_empty_but_its_ticket_never_null():
    assert QueueJoinBody.model_validate_json(b"{}").model_fields_set == set()
    for raw in (b'{"queue_ticket": null}', b'{"queue_ticket": ""}', b'{"queue_ticket": 5}'):
        with pytest.raises(ValidationError):
            QueueJoinBody.model_validate_json(raw)
    schema = document("Queue", "test", QUEUE_APIS)["components"]["schemas"]["QueueJoinBody"]
    assert "required" not in schema and "default" not in schema["properties"]["queue_ticket"]
