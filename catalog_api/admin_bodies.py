"""The bodies of the admin catalog writes, as the models that validate them (strictly:
no unknown fields, no "5" for 5) and describe them in the document. A refused body is a
400 naming each field, before any write, so it changes nothing."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from ticketing.api import Body, Id, Text

MAX_SECTIONS = 50
MAX_ROWS = 200
MAX_SEATS_PER_ROW = 500
MAX_CAPACITY = 100_000
MAX_PRICE_CENTS = 100_000_000  # one million in major units; fits the int4 column
MAX_DESCRIPTION = 5000
CURRENCY = "^[A-Z]{3}$"
_CURRENCY = re.compile(CURRENCY)


def _iso_currency(code: str) -> str:
    if not _CURRENCY.fullmatch(code):
        raise ValueError("must be an ISO 4217 code like EUR")
    return code


# Names and descriptions are kept without their surrounding spaces; a name must not be
# empty once they are gone.
Name200 = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Name100 = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Name50 = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Genre = Annotated[Text, StringConstraints(strip_whitespace=True, max_length=100)]
Description = Annotated[Text, StringConstraints(strip_whitespace=True, max_length=MAX_DESCRIPTION)]
Currency = Annotated[
    str,
    AfterValidator(_iso_currency),
    Field(description="ISO 4217 code, e.g. EUR.", json_schema_extra={"pattern": CURRENCY}),
]


class GeoPoint(Body):
    """A place on Earth in degrees."""

    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class SeatMapSection(Body):
    """Rows of seats at one price; rows are labelled A, B, ... and seats numbered from 1."""

    name: Name50
    rows: Annotated[int, Field(ge=1, le=MAX_ROWS)]
    seats_per_row: Annotated[int, Field(ge=1, le=MAX_SEATS_PER_ROW)]
    price_cents: Annotated[int, Field(ge=0, le=MAX_PRICE_CENTS)]


class SeatMap(Body):
    """A venue's sections: names unique, at most 100,000 seats in all."""

    sections: Annotated[list[SeatMapSection], Field(min_length=1, max_length=MAX_SECTIONS)]

    @field_validator("sections")
    @classmethod
    def _unique_and_bounded(cls, sections: list[SeatMapSection]) -> list[SeatMapSection]:
        names = [s.name for s in sections]
        if len(set(names)) != len(names):
            raise ValueError("Section names must be unique")
        capacity = sum(s.rows * s.seats_per_row for s in sections)
        if capacity > MAX_CAPACITY:
            raise ValueError(
                f"The seat map has {capacity} seats; at most {MAX_CAPACITY} are allowed"
            )
        return sections


class VenueCreate(Body):
    """A new venue and its seat map."""

    name: Name200
    city: Name100
    location: GeoPoint
    seat_map: SeatMap


class PerformerCreate(Body):
    """A new performer."""

    name: Name200
    genre: Genre = ""
    description: Description = ""


class EventCreate(Body):
    """A new event at a venue; one ticket per seat of its seat map, priced by section."""

    name: Name200
    description: Description
    date: Annotated[AwareDatetime, Field(description="RFC 3339 with an offset.")]
    venue_id: Id
    performer_id: Id
    on_sale_at: Annotated[
        AwareDatetime | None, Field(description="Defaults to now; not after date.")
    ] = None
    queue_enabled: bool
    currency: Currency

    @model_validator(mode="after")
    def _on_sale_before_the_event(self) -> EventCreate:
        if self.on_sale_at is not None and self.on_sale_at > self.date:
            raise ValueError("on_sale_at must not be after the event's date")
        return self


# A field left out of an edit is None to the handler, but null is no value to send.
Kept = SkipJsonSchema[None]


def _at_least_one_field(schema: dict[str, Any]) -> None:
    schema["minProperties"] = 1
    for field in schema["properties"].values():
        field.pop("default", None)


class EventEdit(Body):
    """The fields to change, at least one; a field left out keeps its value."""

    model_config = ConfigDict(json_schema_extra=_at_least_one_field)

    name: Name200 | Kept = None
    description: Description | Kept = None
    date: Annotated[AwareDatetime | Kept, Field(description="RFC 3339 with an offset.")] = None
    on_sale_at: Annotated[AwareDatetime | Kept, Field(description="Not after date.")] = None
    queue_enabled: bool | Kept = None
    currency: Annotated[
        Currency | Kept, Field(description="Only while no ticket is held or sold.")
    ] = None
    performer_id: Id | Kept = None

    @field_validator("*", mode="before")
    @classmethod
    def _given_not_null(cls, value: Any) -> Any:
        # Left out keeps a field; null would clear it, and no event field may be empty.
        if value is None:
            raise ValueError("must not be null; leave the field out to keep it")
        return value

    @model_validator(mode="after")
    def _something(self) -> EventEdit:
        if not self.model_fields_set:
            raise ValueError("Send at least one field to change")
        return self
