"""What the booking routes read from a request: the reserve and confirm bodies, the
bookings page's query, the headers and the path ids, each validated (or, for headers and
path ids, read) once and described by the same declaration in the document."""

from __future__ import annotations

import base64
import binascii
import functools
import json
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)

from ticketing.api import Body, Header, Id, PathId, Query, Text
from ticketing.problems import Problem

MAX_TICKETS_PER_REQUEST = 100
MAX_PAYMENT_METHOD_LENGTH = 255
_CHOICES = ("ticket_ids", "ticket_id", "quantity")


def _reserve_schema(schema: dict[str, Any]) -> None:
    """The rules a model validator checks, said in JSON Schema too: exactly one way of
    asking for seats, ``section`` only beside ``quantity``; and the three ways as they are,
    fields one may leave out but not send as null (pydantic types them ``X | None``)."""
    for name in _CHOICES:
        prop = schema["properties"][name]
        prop.pop("default", None)
        (kept,) = [option for option in prop.pop("anyOf") if option != {"type": "null"}]
        prop.update(kept)
    schema["oneOf"] = [{"required": [name]} for name in _CHOICES]
    schema["dependentRequired"] = {"section": ["quantity"]}


class ReserveRequest(Body):
    """Exactly one of ticket_ids, ticket_id or quantity; section only with quantity. All
    or nothing: either every seat asked for is held, or none is."""

    model_config = ConfigDict(json_schema_extra=_reserve_schema)

    # Any JSON integer orjson reads as one (64 bits): an id that is no event's, zero or
    # negative included, answers 404 event_not_found, as it always has.
    event_id: int = Field(
        ge=-(2**63),
        le=2**64 - 1,
        description="The event; an id that is no event's answers 404 event_not_found.",
    )
    ticket_ids: (
        Annotated[
            tuple[Id, ...],
            Field(min_length=1, max_length=MAX_TICKETS_PER_REQUEST),
        ]
        | None
    ) = Field(
        default=None,
        description="These seats, all or none.",
        json_schema_extra={"uniqueItems": True},
    )
    ticket_id: Id | None = Field(default=None, description="This one seat.")
    quantity: Annotated[int, Field(ge=1, le=MAX_TICKETS_PER_REQUEST)] | None = Field(
        default=None, description="The best available seats, adjacent when possible."
    )
    section: Annotated[Text, Field(min_length=1, max_length=100)] | None = Field(
        default=None, description="Only in this section (with quantity)."
    )

    @field_validator(*_CHOICES)
    @classmethod
    def _given_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must be left out rather than null")
        return value

    @field_validator("ticket_ids")
    @classmethod
    def _no_repeats(cls, ids: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(ids)) != len(ids):
            raise ValueError("must not repeat a ticket")
        return ids

    @model_validator(mode="after")
    def _one_way_to_ask(self) -> ReserveRequest:
        given = self.model_fields_set
        if sum(name in given for name in _CHOICES) != 1:
            raise ValueError("Send exactly one of ticket_ids, ticket_id or quantity")
        # Even a null section: the fan meant something the seats by id cannot honour.
        if "section" in given and "quantity" not in given:
            raise ValueError("section goes with quantity, not ticket_ids")
        return self

    def seats(self) -> tuple[int, ...] | None:
        """The seats asked for by id (``ticket_id`` is a list of one), or None."""
        return (self.ticket_id,) if self.ticket_id is not None else self.ticket_ids


class ConfirmRequest(Body):
    """The hold to pay for, and how."""

    # A string, not a UUID: any other string is an unknown hold, 404 hold_not_found.
    hold_id: Annotated[
        str,
        Field(
            description="The hold's id; a string that is not one answers 404 hold_not_found.",
            json_schema_extra={"format": "uuid"},
        ),
    ]
    payment_method: Annotated[
        Text,
        Field(
            min_length=1,
            max_length=MAX_PAYMENT_METHOD_LENGTH,
            description="A Stripe payment method id, e.g. pm_card_visa.",
        ),
    ]


def _cursor(raw: object, handler: ValidatorFunctionWrapHandler) -> object:
    """A cursor from next_cursor: base64url of the JSON (created_at, id) of a page's last
    booking. One refusal for all that is not one: undecodable or of another shape."""
    try:
        if isinstance(raw, str):
            raw = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        return handler(raw)
    # ValueError covers the pair's own refusal too (pydantic's ValidationError is one).
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError("is not a next_cursor of an earlier page") from None


BookingsCursor = Annotated[
    tuple[str, str],
    WrapValidator(_cursor),
    WithJsonSchema({"type": "string", "description": "Opaque cursor from next_cursor."}),
]


class MyBookingsQuery(Query):
    """A page of the caller's bookings."""

    limit: Annotated[int, Field(ge=1, le=100, description="Page size.")] = 20
    cursor: BookingsCursor | None = None


IDEMPOTENCY_KEY = Header(
    "Idempotency-Key",
    "1 to 255 printable ASCII characters. The same key from the same user on the same "
    "route is the same command: a retry (say after a 503 or a lost connection) gets the "
    "first attempt's answer instead of acting twice.",
    schema=(("type", "string"), ("minLength", 1), ("maxLength", 255), ("pattern", "^[ -~]+$")),
)
ADMISSION_TOKEN = Header(
    "X-Admission-Token",
    "Required when the event's waiting room (queue) is enabled; issued by the queue to "
    "this user for this event.",
)
STRIPE_SIGNATURE = Header(
    "Stripe-Signature", "Signed with TICKETING_STRIPE_WEBHOOK_SECRET.", required=True
)


@dataclass(frozen=True, slots=True)
class UuidPath(PathId):
    """A path parameter holding a UUID; any other string is the route's 404 (its handler
    reads it, normalised, with :func:`waitingroom.booking.commands.uuid_or_404`)."""

    def parameter(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "path",
            "required": True,
            "description": self.description,
            "schema": {"type": "string", "format": "uuid"},
        }


HOLD_ID = UuidPath("hold_id", "The hold's id (a UUID); anything else answers 404 hold_not_found.")
BOOKING_ID = UuidPath(
    "booking_id", "The booking's id (a UUID); anything else answers 404 booking_not_found."
)
TICKET_ID = PathId(
    "ticket_id",
    "The ticket's id; an unknown or malformed one answers 404 ticket_not_found.",
    missing=functools.partial(Problem, 404, "ticket_not_found", "No such ticket."),
)
