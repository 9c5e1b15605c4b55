"""The booking routes' request models: what a reserve, a confirm and a bookings page accept,
and the one-shape refusal of everything else, naming the field and why."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from ticketing.api.validate import refusal, validate_mapping
from ticketing.problems import Problem
from waitingroom.booking.inputs import ConfirmRequest, MyBookingsQuery, ReserveRequest


def refused(model: type[BaseModel], raw: bytes) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json(raw)
    return refusal(caught.value.errors(include_url=False), "body").to_dict()


@pytest.mark.parametrize(
    ("raw", "seats", "quantity", "section"),
    [
        (b'{"event_id": 7, "ticket_ids": [4, 3]}', (4, 3), None, None),
        (b'{"event_id": 7, "ticket_id": 3}', (3,), None, None),
        (b'{"event_id": 7, "quantity": 2}', None, 2, None),
        (b'{"event_id": 7, "quantity": 2, "section": "Floor"}', None, 2, "Floor"),
        (b'{"event_id": 7, "quantity": 2, "section": null}', None, 2, None),
        (b'{"event_id": 0, "quantity": 100}', None, 100, None),  # the worker's 404
    ],
)
def test_a_reserve_asks_for_seats_one_way(
    raw: bytes, seats: tuple[int, ...] | None, quantity: int | None, section: str | None
) -> None:
    asked = ReserveRequest.model_validate_json(raw)
    assert (asked.seats(), asked.quantity, asked.section) == (seats, quantity, section)


@pytest.mark.parametrize(
    ("raw", "name", "message"),
    [
        (b'{"event_id": 7, "quantity": 1, "seat": "A1"}', "seat", "seat is not a known field."),
        (
            b'{"event_id": 7, "quantity": 1, "section": "a\\u0000b"}',
            "section",
            "section must not contain NUL characters.",
        ),
        (
            b'{"event_id": 7, "ticket_ids": [1], "quantity": 1}',
            "",
            "Send exactly one of ticket_ids, ticket_id or quantity.",
        ),
        (b'{"event_id": 7}', "", "Send exactly one of ticket_ids, ticket_id or quantity."),
        (
            b'{"event_id": 7, "ticket_id": 1, "section": "Floor"}',
            "",
            "section goes with quantity, not ticket_ids.",
        ),
        (
            b'{"event_id": 7, "ticket_ids": [1], "section": null}',
            "",
            "section goes with quantity, not ticket_ids.",
        ),
        (
            b'{"event_id": 7, "ticket_ids": [1, 1]}',
            "ticket_ids",
            "ticket_ids: must not repeat a ticket.",
        ),
        (
            b'{"event_id": 7, "ticket_ids": []}',
            "ticket_ids",
            "ticket_ids must have at least 1 items.",
        ),
        (
            b'{"event_id": 7, "ticket_ids": [0]}',
            "ticket_ids[0]",
            "ticket_ids[0] must be at least 1.",
        ),
        (
            b'{"event_id": 7, "quantity": null}',
            "quantity",
            "quantity: must be left out rather than null.",
        ),
        (b'{"event_id": 7, "quantity": 101}', "quantity", "quantity must be at most 100."),
        (b'{"event_id": 7, "quantity": true}', "quantity", "quantity must be an integer."),
        (b'{"event_id": "7", "quantity": 1}', "event_id", "event_id must be an integer."),
        (
            b'{"event_id": 7, "quantity": 1, "section": ""}',
            "section",
            "section must be at least 1 characters long.",
        ),
        (b"[7]", "", "The request body must be a JSON object."),
    ],
)
def test_a_reserve_refused_names_the_field_and_why(raw: bytes, name: str, message: str) -> None:
    problem = refused(ReserveRequest, raw)
    assert (problem["status"], problem["code"], problem["detail"]) == (
        400,
        "validation_error",
        message,
    )
    assert problem["errors"][0] == {"in": "body", "name": name, "message": message}


def test_an_event_id_beyond_64_bits_is_refused_as_before() -> None:
    """orjson, which read reserve bodies before, read such a number as a float: 400."""
    assert ReserveRequest.model_validate_json(b'{"event_id": 18446744073709551615, "quantity": 1}')
    problem = refused(ReserveRequest, b'{"event_id": 18446744073709551616, "quantity": 1}')
    assert problem["field"] == "event_id"


def test_a_confirm_takes_any_hold_id_string_and_a_payment_method() -> None:
    # Not a UUID: the route's 404 hold_not_found, not a 400.
    asked = ConfirmRequest.model_validate_json(b'{"hold_id": "nope", "payment_method": "pm_x"}')
    assert (asked.hold_id, asked.payment_method) == ("nope", "pm_x")
    problem = refused(ConfirmRequest, b'{"hold_id": "h"}')
    assert problem["errors"] == [
        {"in": "body", "name": "payment_method", "message": "payment_method is required."}
    ]
    problem = refused(ConfirmRequest, b'{"hold_id": 5, "payment_method": "pm_x", "tip": 1}')
    assert [e["name"] for e in problem["errors"]] == ["hold_id", "tip"]


def cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_a_bookings_page_reads_its_limit_and_cursor_from_strings() -> None:
    page = validate_mapping({}, MyBookingsQuery, "query")
    assert (page.limit, page.cursor) == (20, None)
    page = validate_mapping(
        {"limit": "5", "cursor": cursor(["2026-01-01T00:00:00+00:00", "x"])},
        MyBookingsQuery,
        "query",
    )
    assert (page.limit, page.cursor) == (5, ("2026-01-01T00:00:00+00:00", "x"))


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "%%%"}, "cursor"),
        ({"cursor": cursor([1, "x"])}, "cursor"),
        ({"cursor": cursor(["a", "b", "c"])}, "cursor"),
        ({"cursor": cursor({"a": 1})}, "cursor"),
    ],
)
def test_a_bad_page_is_refused_naming_the_parameter(given: dict[str, str], name: str) -> None:
    with pytest.raises(Problem) as caught:
        validate_mapping(given, MyBookingsQuery, "query")
    problem = caught.value.to_dict()
    assert (problem["code"], problem["parameter"]) == ("validation_error", name)
    assert problem["errors"][0]["in"] == "query"
