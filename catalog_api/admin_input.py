"""Strict decoding of admin request bodies. Anything off is a 400 naming the field, raised
before any write, so a rejected request changes nothing."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ticketing.domain.seating import Section
from ticketing.problems import validation_error
from ticketing.validation import MAX_ID, parse_timestamp

MAX_SECTIONS = 50
MAX_ROWS = 200
MAX_SEATS_PER_ROW = 500
MAX_CAPACITY = 100_000
MAX_PRICE_CENTS = 100_000_000  # one million in major units; fits the int4 column
MAX_DESCRIPTION = 5000
CURRENCY = re.compile(r"^[A-Z]{3}$")


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


def _fields(body: dict[str, Any], required: Set[str], optional: Set[str] = frozenset()) -> None:
    unknown = sorted(set(body) - required - optional)
    if unknown:
        raise validation_error("Unknown field(s): " + ", ".join(unknown) + ".", field=unknown[0])
    missing = sorted(required - set(body))
    if missing:
        raise validation_error("Missing field(s): " + ", ".join(missing) + ".", field=missing[0])


def _text(value: Any, name: str, max_length: int, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise validation_error(f"{name} must be a string.", field=name)
    text = value.strip()
    if (not text and not allow_empty) or len(text) > max_length:
        low = 0 if allow_empty else 1
        raise validation_error(f"{name} must be {low} to {max_length} characters long.", field=name)
    return text


def _int(value: Any, name: str, minimum: int, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise validation_error(f"{name} must be an integer.", field=name)
    if not minimum <= value <= maximum:
        raise validation_error(f"{name} must be between {minimum} and {maximum}.", field=name)
    return value


def _number(value: Any, name: str, minimum: float, maximum: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise validation_error(f"{name} must be a number.", field=name)
    if not minimum <= value <= maximum:
        raise validation_error(f"{name} must be between {minimum:g} and {maximum:g}.", field=name)
    return float(value)


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise validation_error(f"{name} must be true or false.", field=name)
    return value


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not CURRENCY.match(value):
        raise validation_error("currency must be an ISO 4217 code like EUR.", field="currency")
    return value


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise validation_error(f"{name} must be an object.", field=name)
    return value


def _sections(seat_map: Any) -> list[Section]:
    seat_map = _object(seat_map, "seat_map")
    _fields(seat_map, {"sections"})
    raw = seat_map["sections"]
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_SECTIONS:
        raise validation_error(
            f"seat_map.sections must be a list of 1 to {MAX_SECTIONS} sections.",
            field="seat_map.sections",
        )
    sections = []
    for i, item in enumerate(raw):
        where = f"seat_map.sections[{i}]"
        item = _object(item, where)
        _fields(item, {"name", "rows", "seats_per_row", "price_cents"})
        sections.append(
            Section(
                name=_text(item["name"], f"{where}.name", 50),
                rows=_int(item["rows"], f"{where}.rows", 1, MAX_ROWS),
                seats_per_row=_int(
                    item["seats_per_row"], f"{where}.seats_per_row", 1, MAX_SEATS_PER_ROW
                ),
                price_cents=_int(item["price_cents"], f"{where}.price_cents", 0, MAX_PRICE_CENTS),
            )
        )
    names = [s.name for s in sections]
    if len(set(names)) != len(names):
        raise validation_error("Section names must be unique.", field="seat_map.sections")
    capacity = sum(s.capacity for s in sections)
    if capacity > MAX_CAPACITY:
        raise validation_error(
            f"The seat map has {capacity} seats; at most {MAX_CAPACITY} are allowed.",
            field="seat_map.sections",
        )
    return sections


def venue_input(body: dict[str, Any]) -> VenueInput:
    _fields(body, {"name", "city", "location", "seat_map"})
    location = _object(body["location"], "location")
    _fields(location, {"lat", "lon"})
    return VenueInput(
        name=_text(body["name"], "name", 200),
        city=_text(body["city"], "city", 100),
        lat=_number(location["lat"], "location.lat", -90, 90),
        lon=_number(location["lon"], "location.lon", -180, 180),
        sections=_sections(body["seat_map"]),
    )


def performer_input(body: dict[str, Any]) -> PerformerInput:
    _fields(body, {"name"}, {"genre", "description"})
    return PerformerInput(
        name=_text(body["name"], "name", 200),
        genre=_text(body.get("genre", ""), "genre", 100, allow_empty=True),
        description=_text(
            body.get("description", ""), "description", MAX_DESCRIPTION, allow_empty=True
        ),
    )


def check_on_sale(on_sale_at: datetime | None, starts_at: datetime) -> None:
    if on_sale_at is not None and on_sale_at > starts_at:
        raise validation_error("on_sale_at must not be after the event's date.", field="on_sale_at")


def event_input(body: dict[str, Any]) -> EventInput:
    _fields(
        body,
        {"name", "description", "date", "venue_id", "performer_id", "queue_enabled", "currency"},
        {"on_sale_at"},
    )
    on_sale_raw = body.get("on_sale_at")
    event = EventInput(
        name=_text(body["name"], "name", 200),
        description=_text(body["description"], "description", MAX_DESCRIPTION, allow_empty=True),
        starts_at=parse_timestamp(body["date"], "date"),
        venue_id=_int(body["venue_id"], "venue_id", 1, MAX_ID),
        performer_id=_int(body["performer_id"], "performer_id", 1, MAX_ID),
        on_sale_at=None if on_sale_raw is None else parse_timestamp(on_sale_raw, "on_sale_at"),
        queue_enabled=_bool(body["queue_enabled"], "queue_enabled"),
        currency=_currency(body["currency"]),
    )
    check_on_sale(event.on_sale_at, event.starts_at)
    return event


def event_changes(body: dict[str, Any]) -> dict[str, Any]:
    """A PATCH body as {column: value}; at least one field."""
    decoders: dict[str, tuple[str, Callable[[Any], Any]]] = {
        "name": ("name", lambda v: _text(v, "name", 200)),
        "description": (
            "description",
            lambda v: _text(v, "description", MAX_DESCRIPTION, allow_empty=True),
        ),
        "date": ("starts_at", lambda v: parse_timestamp(v, "date")),
        "on_sale_at": ("on_sale_at", lambda v: parse_timestamp(v, "on_sale_at")),
        "queue_enabled": ("queue_enabled", lambda v: _bool(v, "queue_enabled")),
        "currency": ("currency", _currency),
        "performer_id": ("performer_id", lambda v: _int(v, "performer_id", 1, MAX_ID)),
    }
    _fields(body, set(), set(decoders))
    if not body:
        raise validation_error("Send at least one field to change.")
    return {decoders[k][0]: decoders[k][1](v) for k, v in body.items()}
