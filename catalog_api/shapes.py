"""The JSON replies of catalog_api, as the document shows them. The handlers build their
dicts themselves (ticketing/db/events.py makes the event views); these models describe
them, field for field, and the contract tests hold every reply to them."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from catalog_api.admin_bodies import GeoPoint, SeatMap
from ticketing.api import ProblemFields, Shape


class VenueSummary(Shape):
    """Where an event takes place."""

    id: int
    name: str
    city: str


class PerformerSummary(Shape):
    """Who performs."""

    id: int
    name: str


class EventSummary(Shape):
    """An event as lists and search hits show it."""

    id: int
    name: str
    date: dt.datetime = Field(description="When it starts (RFC 3339, UTC).")
    venue: VenueSummary
    performer: PerformerSummary
    min_price_cents: int = Field(
        description="The cheapest seat still on sale; when sold out, the cheapest there was."
    )
    currency: str
    available_tickets: int
    queue_enabled: bool


class EventVenue(VenueSummary):
    """The venue of an event's full view, with its location."""

    location: GeoPoint


class EventAvailability(Shape):
    """The event's seats by status."""

    available: int
    reserved: int
    booked: int
    total: int


class PriceTier(Shape):
    """One section's price and seats by status, dearest section first."""

    section: str
    price_cents: int
    total: int
    available: int
    reserved: int
    booked: int


class Event(EventSummary):
    """An event's full view: the summary, its description, the venue's location, when it
    goes on sale, availability and price tiers by section."""

    venue: EventVenue
    description: str
    on_sale_at: dt.datetime
    availability: EventAvailability
    price_tiers: list[PriceTier]


class EventPage(Shape):
    """A page of events by date, then id."""

    items: list[EventSummary]
    next_cursor: str | None = Field(description="The next page's cursor; null on the last.")


class ListedTicketSeat(Shape):
    """Where a ticket's seat is."""

    section: str
    row: str
    number: int


class ListedTicket(Shape):
    """One seat of an event, its price and status."""

    id: int
    seat: ListedTicketSeat
    price_cents: int
    status: Literal["available", "reserved", "booked"]


class TicketPage(Shape):
    """A page of an event's tickets in seat-map order."""

    items: list[ListedTicket]
    next_cursor: str | None = Field(description="The next page's cursor; null on the last.")


class CityFacet(Shape):
    """How many of the matches are in one city."""

    value: str
    count: int


class SearchFacets(Shape):
    """Counts of the matches by city, most first."""

    city: list[CityFacet]


class SearchResult(Shape):
    """One page of the events matching a search."""

    found: int = Field(description="How many events match, on every page.")
    page: int
    hits: list[EventSummary]
    facets: SearchFacets


class Venue(Shape):
    """A venue as created."""

    id: int
    name: str
    city: str
    location: GeoPoint
    seat_map: SeatMap
    capacity: int = Field(description="Seats in all sections.")


class Performer(Shape):
    """A performer as created."""

    id: int
    name: str
    genre: str
    description: str


class RefusedField(ProblemFields):
    """The body field a refusal is about, when there is one."""

    field: str | None = Field(default=None, description="The body field refused.")
