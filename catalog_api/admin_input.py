"""What the admin writes hand the catalog store: the domain's venue, performer and event,
read from the bodies the routes validated (catalog_api/admin_bodies.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from catalog_api.admin_bodies import EventCreate, EventEdit, PerformerCreate, VenueCreate
from ticketing.domain.seating import Section
from ticketing.problems import validation_error


@dataclass(frozen=True, slots=True)
class VenueInput:
    name: str
    city: str
    lat: float
    lon: float
    sections: list[Section]

    @property
    def capacity(self) -> int:
        return sum(s.capacity for s in self.sections)


@dataclass(frozen=True, slots=True)
class PerformerInput:
    name: str
    genre: str
    description: str


@dataclass(frozen=True, slots=True)
class EventInput:
    name: str
    description: str
    starts_at: datetime
    venue_id: int
    performer_id: int
    on_sale_at: datetime | None
    queue_enabled: bool
    currency: str


def venue_input(body: VenueCreate) -> VenueInput:
    return VenueInput(
        name=body.name,
        city=body.city,
        lat=body.location.lat,
        lon=body.location.lon,
        sections=[
            Section(
                name=s.name, rows=s.rows, seats_per_row=s.seats_per_row, price_cents=s.price_cents
            )
            for s in body.seat_map.sections
        ],
    )


def performer_input(body: PerformerCreate) -> PerformerInput:
    return PerformerInput(name=body.name, genre=body.genre, description=body.description)


def event_input(body: EventCreate) -> EventInput:
    return EventInput(
        name=body.name,
        description=body.description,
        starts_at=body.date.astimezone(UTC),
        venue_id=body.venue_id,
        performer_id=body.performer_id,
        on_sale_at=None if body.on_sale_at is None else body.on_sale_at.astimezone(UTC),
        queue_enabled=body.queue_enabled,
        currency=body.currency,
    )


# The body's fields as the events table's columns: the whitelist update_event writes.
_COLUMNS = {
    "name": "name",
    "description": "description",
    "date": "starts_at",
    "on_sale_at": "on_sale_at",
    "queue_enabled": "queue_enabled",
    "currency": "currency",
    "performer_id": "performer_id",
}


def event_changes(body: EventEdit) -> dict[str, Any]:
    """The fields the edit gives, as {column: value}, instants in UTC."""
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        changes[_COLUMNS[name]] = value.astimezone(UTC) if isinstance(value, datetime) else value
    return changes


def check_on_sale(on_sale_at: datetime | None, starts_at: datetime) -> None:
    """An edit that moves either instant, checked against the other's stored value."""
    if on_sale_at is not None and on_sale_at > starts_at:
        detail = "on_sale_at must not be after the event's date."
        raise validation_error(
            detail,
            field="on_sale_at",
            errors=[{"in": "body", "name": "on_sale_at", "message": detail}],
        )
