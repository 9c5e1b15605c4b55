"""The query parameters of the catalog's read routes, as the models that validate them and
describe them in the document; and the UTC days they name as instants."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from ticketing.api import Id, Query, Text

MAX_RADIUS_KM = 20_000.0
MAX_PAGE = 1000


def _absent_if_blank(value: object) -> object:
    # A parameter of only spaces is as if it were not given, whatever its length.
    return None if isinstance(value, str) and not value.strip() else value


def _stripped(value: object) -> object:
    # Before a check of the whole value (one of a set), where stripping after is too late.
    return value.strip() if isinstance(value, str) else value


# Text parameters: at most N characters as sent, given without their surrounding spaces.
_Absent = BeforeValidator(_absent_if_blank)
_Strip = AfterValidator(str.strip)
Text50 = Annotated[Annotated[Text, Field(max_length=50), _Strip] | None, _Absent]
Text100 = Annotated[Annotated[Text, Field(max_length=100), _Strip] | None, _Absent]
Text200 = Annotated[Annotated[Text, Field(max_length=200), _Strip] | None, _Absent]

Cursor = Annotated[str | None, Field(description="Opaque cursor from next_cursor.")]
FirstDay = Annotated[dt.date | None, Field(description="First UTC day (inclusive).")]
LastDay = Annotated[dt.date | None, Field(description="Last UTC day (inclusive).")]


def _days_in_order(date_from: dt.date | None, date_to: dt.date | None) -> None:
    if date_from and date_to and date_from > date_to:
        raise ValueError("date_from must not be after date_to")


class EventListQuery(Query):
    """``GET /events``."""

    limit: Annotated[int, Field(ge=1, le=100, description="Page size.")] = 20
    cursor: Cursor = None
    city: Annotated[Text100, Field(description="Venue city, case-insensitive exact match.")] = None
    date_from: FirstDay = None
    date_to: LastDay = None
    performer_id: Annotated[Id | None, Field(description="Only this performer's events.")] = None

    @model_validator(mode="after")
    def _days(self) -> EventListQuery:
        _days_in_order(self.date_from, self.date_to)
        return self


class TicketListQuery(Query):
    """``GET /events/{event_id}/tickets``."""

    status: Annotated[
        Literal["available", "reserved", "booked"] | None,
        BeforeValidator(_stripped),
        _Absent,
        Field(description="Ticket status."),
    ] = None
    section: Annotated[Text50, Field(description="Section name.")] = None
    limit: Annotated[int, Field(ge=1, le=500, description="Page size.")] = 20
    cursor: Cursor = None


_NEAR = "must be 'lat,lon', a latitude from -90 to 90 and a longitude from -180 to 180"


def lat_lon(text: str) -> tuple[float, float]:
    """``near`` as (latitude, longitude)."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError(_NEAR)
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(_NEAR) from None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(_NEAR)
    return lat, lon


class EventSearchQuery(Query):
    """``GET /search``: every parameter optional, all combinable."""

    term: Annotated[Text200, Field(description="Matches event, performer and venue names.")] = None
    location: Annotated[Text100, Field(description="Venue city, typo-tolerant.")] = None
    date: Annotated[dt.date | None, Field(description="One UTC calendar day.")] = None
    date_from: FirstDay = None
    date_to: LastDay = None
    near: Annotated[Text100, Field(description="lat,lon; requires radius_km.")] = None
    radius_km: Annotated[
        Annotated[float, Field(gt=0, le=MAX_RADIUS_KM, allow_inf_nan=False)] | None,
        _Absent,
        Field(description="Radius around near; requires near."),
    ] = None
    page: Annotated[int, Field(ge=1, le=MAX_PAGE, description="Page number.")] = 1
    per_page: Annotated[int, Field(ge=1, le=100, description="Hits per page.")] = 20

    @field_validator("near")
    @classmethod
    def _a_point(cls, near: str | None) -> str | None:
        if near is not None:
            lat_lon(near)
        return near

    @model_validator(mode="after")
    def _together(self) -> EventSearchQuery:
        _days_in_order(self.date_from, self.date_to)
        if (self.near is None) != (self.radius_km is None):
            raise ValueError("near and radius_km go together")
        return self


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def day_range(
    date_from: dt.date | None, date_to: dt.date | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``date_from``/``date_to`` as [start, end) instants covering whole UTC days."""
    return (
        day_start(date_from) if date_from else None,
        day_start(date_to + dt.timedelta(days=1)) if date_to else None,
    )
