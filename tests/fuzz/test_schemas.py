"""The schema strategies (schemas.py) hold to the schemas they are drawn from, for every
schema the gateway's OpenAPI document has: valid draws validate, invalid ones do not, and
the invalid ones include each kind of mistake the services must refuse."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.contract import capture
from tests.fuzz.schemas import Schemas


@functools.cache
def _document() -> dict[str, Any]:
    return capture.contract().document


def _schemas() -> dict[str, dict[str, Any]]:
    """Every component, parameter and request body schema, by a readable name."""
    document = _document()
    found = {
        name: {"$ref": f"#/components/schemas/{name}"} for name in document["components"]["schemas"]
    }
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                found[f"{method.upper()} {path} {parameter['name']}"] = parameter["schema"]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                found[f"{method.upper()} {path} body"] = body["schema"]
    return found


SCHEMAS = _schemas()
# The filters may reject some draws, never most of them: too_slow and filter_too_much
# stay on, and fail a strategy that mostly draws what its schema refuses.
DRAWS = settings(
    max_examples=12,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.data_too_large],
)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_valid_and_invalid_draws_hold_to_the_schema(name: str) -> None:
    schemas = Schemas(_document())
    schema = SCHEMAS[name]

    @DRAWS
    @given(valid=schemas.valid(schema), invalid=schemas.invalid(schema))
    def draws(valid: Any, invalid: Any) -> None:
        assert schemas.is_valid(schema, valid), valid
        assert not schemas.is_valid(schema, invalid), invalid

    draws()


REQUIRED = {"name", "description", "date", "venue_id", "performer_id", "queue_enabled", "currency"}
KNOWN = {*REQUIRED, "on_sale_at"}


def _mistake(body: Any) -> str:
    if not isinstance(body, dict):
        return "wrong type"
    if len(REQUIRED - set(body)) == 1:
        return "missing required"
    if set(body) >= REQUIRED and not set(body) <= KNOWN:
        return "unknown field"
    venue = body.get("venue_id")
    if isinstance(venue, int) and not 1 <= venue < 2**63:
        return "out of range"
    return "other"


def test_invalid_draws_include_every_kind_of_mistake() -> None:
    schemas = Schemas(_document())
    seen: set[str] = set()

    @settings(
        max_examples=300, derandomize=True, database=None, deadline=None, phases=(Phase.generate,)
    )
    @given(schemas.invalid({"$ref": "#/components/schemas/EventCreate"}))
    def draws(body: Any) -> None:
        seen.add(_mistake(body))

    draws()
    assert {"wrong type", "missing required", "unknown field", "out of range"} <= seen, seen


@given(st.data())
@settings(max_examples=30, derandomize=True, database=None, deadline=None)
def test_valid_reserve_requests_name_exactly_one_way_to_pick_seats(data: st.DataObject) -> None:
    """ReserveRequest's oneOf: the branch's required field, never another branch's."""
    body = data.draw(Schemas(_document()).valid({"$ref": "#/components/schemas/ReserveRequest"}))
    assert len({"ticket_ids", "ticket_id", "quantity"} & set(body)) == 1
