"""The decoded ``/search`` request, shared by the Typesense search and its Postgres fallback."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from catalog_api.event_routes import day_start, query_day_range, query_text
from ticketing.problems import validation_error
from ticketing.validation import query_date, query_int

MAX_RADIUS_KM = 20_000.0
MAX_PAGE = 1000


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


def _float(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        raise validation_error(f"{name} must be a number.", parameter=name) from exc
    if not math.isfinite(value):
        raise validation_error(f"{name} must be a finite number.", parameter=name)
    return value


def _near(request: web.Request) -> Near | None:
    near = query_text(request, "near", 100)
    radius = query_text(request, "radius_km", 50)
    if near is None and radius is None:
        return None
    if near is None or radius is None:
        raise validation_error("near and radius_km go together.", parameter="near")
    parts = near.split(",")
    if len(parts) != 2:
        raise validation_error("near must be 'lat,lon'.", parameter="near")
    lat, lon = _float(parts[0].strip(), "near"), _float(parts[1].strip(), "near")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise validation_error("near must be a valid latitude,longitude.", parameter="near")
    radius_km = _float(radius, "radius_km")
    if not 0 < radius_km <= MAX_RADIUS_KM:
        raise validation_error(
            f"radius_km must be greater than 0 and at most {MAX_RADIUS_KM:g}.",
            parameter="radius_km",
        )
    return Near(lat, lon, radius_km)


def parse_search_query(request: web.Request) -> SearchQuery:
    starts_from, starts_before = query_day_range(request)
    day = query_date(request, "date")
    if day is not None:
        # Combined with a range, the day narrows it (an empty intersection finds nothing).
        day_from, day_before = day_start(day), day_start(day + timedelta(days=1))
        starts_from = max(starts_from, day_from) if starts_from else day_from
        starts_before = min(starts_before, day_before) if starts_before else day_before
    return SearchQuery(
        term=query_text(request, "term"),
        location=query_text(request, "location", 100),
        starts_from=starts_from,
        starts_before=starts_before,
        near=_near(request),
        page=query_int(request, "page", 1, 1, MAX_PAGE),
        per_page=query_int(request, "per_page", 20, 1, 100),
    )
