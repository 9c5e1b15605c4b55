"""The booking front door's contract: its document lists every route with the statuses,
problem codes and parameters it answers and reads, and each reply shape names exactly the
members the booking worker really sends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from booking_worker.payment_replies import hold_expired, payment_failed, payment_in_progress
from booking_worker.reserve import not_on_sale, refusal
from ticketing.api import document
from ticketing.api.shapes import Problem
from ticketing.domain.booking import LimitExceeded as CapReached
from ticketing.domain.booking import SeatsUnavailable
from ticketing.domain.booking_shapes import Booking, Hold, Ticket, TicketState
from ticketing.web import PLATFORM_API
from waitingroom.booking import shapes
from waitingroom.booking.contract import BOOKING_APIS
from waitingroom.openapi import build_document

AUTH = ("unauthorized", "invalid_token", "token_expired")
DOWN = ("backend_unavailable",)
LIMITED = ("rate_limited",)
# (method, path) -> {status: problem codes (none for a success)}
ROUTES: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("post", "/booking/reserve"): {
        "201": (),
        "400": ("validation_error",),
        "401": AUTH,
        "403": ("admission_required", "admission_invalid"),
        "404": ("event_not_found",),
        "409": ("tickets_unavailable", "not_on_sale", "presale_sold_out"),
        "413": ("payload_too_large",),
        "422": ("limit_exceeded",),
        "429": LIMITED,
        "503": DOWN,
    },
    ("post", "/booking/confirm"): {
        "201": (),
        "400": ("validation_error",),
        "401": AUTH,
        "402": ("payment_failed",),
        "403": ("not_your_hold",),
        "404": ("hold_not_found",),
        "409": ("hold_expired", "payment_in_progress", "not_on_sale"),
        "413": ("payload_too_large",),
        "429": LIMITED,
        "503": DOWN,
    },
    ("delete", "/booking/holds/{hold_id}"): {
        "204": (),
        "400": ("validation_error",),
        "401": AUTH,
        "403": ("not_your_hold",),
        "404": ("hold_not_found",),
        "409": ("hold_confirmed", "hold_expired"),
        "429": LIMITED,
        "503": DOWN,
    },
    ("get", "/booking/{ticket_id}"): {
        "200": (),
        "401": AUTH,
        "404": ("ticket_not_found",),
        "429": LIMITED,
        "503": DOWN,
    },
    ("get", "/bookings/{booking_id}"): {
        "200": (),
        "401": AUTH,
        "404": ("booking_not_found",),
        "429": LIMITED,
        "503": DOWN,
    },
    ("get", "/me/bookings"): {
        "200": (),
        "400": ("validation_error",),
        "401": AUTH,
        "429": LIMITED,
        "503": DOWN,
    },
    ("post", "/webhooks/stripe"): {
        "200": (),
        "400": ("invalid_signature", "validation_error"),
        "413": ("payload_too_large",),
        "429": LIMITED,
        "503": DOWN,
    },
}
PARAMETERS = {
    ("post", "/booking/reserve"): {("X-Admission-Token", "header"), ("Idempotency-Key", "header")},
    ("post", "/booking/confirm"): {("Idempotency-Key", "header")},
    ("delete", "/booking/holds/{hold_id}"): {("hold_id", "path"), ("Idempotency-Key", "header")},
    ("get", "/booking/{ticket_id}"): {("ticket_id", "path")},
    ("get", "/bookings/{booking_id}"): {("booking_id", "path")},
    ("get", "/me/bookings"): {("limit", "query"), ("cursor", "query")},
    ("post", "/webhooks/stripe"): {("Stripe-Signature", "header")},
}
DOCUMENT = build_document("booking")


def codes_of(response: dict[str, Any]) -> tuple[str, ...]:
    for part in response["content"]["application/problem+json"]["schema"]["allOf"]:
        if "code" in part.get("properties", {}):
            return tuple(part["properties"]["code"]["enum"])
    return ()


@pytest.mark.parametrize(("route", "answers"), ROUTES.items(), ids=lambda r: str(r))
def test_every_route_lists_what_it_answers_and_reads(
    route: tuple[str, str], answers: dict[str, tuple[str, ...]]
) -> None:
    method, path = route
    operation = DOCUMENT["paths"][path][method]
    assert set(operation["responses"]) == set(answers)
    for status, codes in answers.items():
        response = operation["responses"][status]
        if codes:
            assert codes_of(response) == codes, status
        if status in ("429", "503"):
            assert "Retry-After" in response["headers"]
    found = {(p["name"], p["in"]) for p in operation.get("parameters", ())}
    assert found == PARAMETERS[route]
    assert ("security" in operation) == (path != "/webhooks/stripe")
    # Every body is described, the webhook's raw one too.
    assert ("requestBody" in operation) == (method == "post")


def test_every_booking_route_is_declared_once_and_in_both_documents() -> None:
    declared = [(op.method.lower(), op.path) for api in BOOKING_APIS for op in api.operations]
    assert sorted(declared) == sorted(ROUTES)
    served = {path for _, path in declared}
    assert set(DOCUMENT["paths"]) - set(document("", "", [PLATFORM_API])["paths"]) == served
    assert set(build_document("all")["paths"]) >= served


AT = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)
SEATS = (Ticket(11, "Floor", "A", 1, 4000), Ticket(12, "Floor", "A", 2, 4000))
BOOKED = Booking(uuid.uuid4(), uuid.uuid4(), "confirmed", SEATS, 8000, "EUR", None, AT)


def fits(model: type[BaseModel], body: dict[str, Any]) -> None:
    """The body is the model's, no member unnamed (a reply shape forbids extras itself)."""
    model.model_validate(body)
    assert set(body) <= {field.alias or name for name, field in model.model_fields.items()}


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (shapes.Hold, Hold(uuid.uuid4(), 7, SEATS, "EUR", AT).to_json()),
        (shapes.Booking, BOOKED.to_json()),
        (shapes.BookingPage, {"items": [BOOKED.to_json()], "next_cursor": None}),
        (shapes.BookingPage, {"items": [], "next_cursor": "abc"}),
        (shapes.StripeEventReceived, {"received": True, "duplicate": False}),
        (shapes.StripeEventReceived, {"received": True}),
    ],
)
def test_a_reply_is_its_shape(model: type[BaseModel], body: dict[str, Any]) -> None:
    fits(model, body)


@pytest.mark.parametrize("status", ["available", "reserved", "booked"])
@pytest.mark.parametrize("who", ["ann", "bob", "admin"])
def test_a_ticket_status_is_its_shape_whoever_asks(status: str, who: str) -> None:
    for live in (True, False):
        state = TicketState(11, status, live, uuid.uuid4(), AT, "ann", uuid.uuid4(), "ann")
        fits(shapes.TicketStatus, state.to_json(who, who == "admin"))


def problem_fits(extra: type[BaseModel] | None, body: dict[str, Any]) -> None:
    Problem.model_validate(body)
    standard = set(Problem.model_fields)
    beyond = set(body) - standard
    declared = set(extra.model_fields) if extra is not None else set()
    assert beyond <= declared, beyond - declared
    if extra is not None:
        extra.model_validate(body)


def test_each_problem_carries_only_the_members_its_route_declares() -> None:
    taken = refusal(SeatsUnavailable("Taken.", [12])).to_dict()
    assert taken["unavailable_ticket_ids"] == [12]
    problem_fits(shapes.ReserveConflict, taken)
    problem_fits(shapes.ReserveConflict, not_on_sale(AT).to_dict())
    problem_fits(shapes.LimitExceeded, refusal(CapReached(8, 6, 3)).to_dict())
    problem_fits(shapes.ConfirmConflict, not_on_sale(AT).to_dict())
    for reply in (hold_expired(), payment_in_progress()):
        problem_fits(shapes.ConfirmConflict, reply[1] or {})
    for code in ("card_declined", None):
        status, body = payment_failed(code)
        assert status == 402
        problem_fits(shapes.PaymentFailed, body or {})
