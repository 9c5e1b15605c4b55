"""The decoded ``/search`` request, shared by the Typesense search and its Postgres fallback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from catalog_api.query_params import EventSearchQuery, day_range, day_start, lat_lon
from ticketing.api import read_query


@dataclass(frozen=True, slots=True)
class Near:
    lat: float
    lon: float
    radius_km: float


@dataclass(frozen=True, slots=True)
class SearchQuery:
    term: str | None
    location: str | None
    starts_from: datetime | None  # inclusive
    starts_before: datetime | None  # exclusive
    near: Near | None
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def search_query(params: EventSearchQuery) -> SearchQuery:
    """The search the validated parameters ask for."""
    starts_from, starts_before = day_range(params.date_from, params.date_to)
    if params.date is not None:
        # Combined with a range, the day narrows it (an empty intersection finds nothing).
        day_from, day_before = day_start(params.date), day_start(params.date + timedelta(days=1))
        starts_from = max(starts_from, day_from) if starts_from else day_from
        starts_before = min(starts_before, day_before) if starts_before else day_before
    near = None
    if params.near is not None and params.radius_km is not None:
        near = Near(*lat_lon(params.near), radius_km=params.radius_km)
    return SearchQuery(
        term=params.term,
        location=params.location,
        starts_from=starts_from,
        starts_before=starts_before,
        near=near,
        page=params.page,
        per_page=params.per_page,
    )


def parse_search_query(request: web.Request) -> SearchQuery:
    """The search a request asks for, validated as the route does (bench/search_queries.py
    builds its Typesense requests from it)."""
    return search_query(read_query(request, EventSearchQuery))
