"""Venues for the demo catalog: real cities, a place near the centre, a seat map and prices.

Pure functions of a ``random.Random``: the same seed gives the same venues, seat for seat.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from importlib import resources
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from ticketing.domain.seating import Section, ticket_records

KM_PER_DEGREE = 111.32


@dataclass(frozen=True, slots=True)
class City:
    name: str
    country: str
    lat: float
    lon: float
    currency: str
    timezone: ZoneInfo
    per_eur: float
    minor_digits: int

    def price(self, euros: float) -> int:
        """A round local price for about ``euros``, in the currency's minor units."""
        major = euros * self.per_eur
        step: float = 5 * 10 ** (math.floor(math.log10(major)) - 1)
        minor_per_major: int = 10**self.minor_digits
        return round(round(major / step) * step * minor_per_major)


@dataclass(frozen=True, slots=True)
class Venue:
    name: str
    kind: str
    city: City
    lat: float
    lon: float
    sections: tuple[Section, ...]

    @property
    def capacity(self) -> int:
        return sum(s.capacity for s in self.sections)

    def seat_map(self) -> dict[str, Any]:
        """The seat map in the shape ``POST /admin/venues`` takes."""
        return {"sections": [s.to_json() for s in self.sections]}

    def seats(self) -> list[tuple[str, str, int, int]]:
        """Every seat as (section, row label, number, price_cents), labelled as the admin
        API labels them; sorted as the tickets' unique index sorts them (codepoint order,
        like the C collation), so a bulk load appends to the index instead of inserting
        all over it."""
        return sorted(record[1:] for record in ticket_records(0, list(self.sections)))


@cache
def data(name: str) -> dict[str, Any]:
    text = resources.files("ticketing").joinpath("data", name).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def load_cities() -> list[City]:
    doc = data("cities.json")
    currencies = doc["currencies"]
    return [
        City(
            name=c["name"],
            country=c["country"],
            lat=c["lat"],
            lon=c["lon"],
            currency=c["currency"],
            timezone=ZoneInfo(c["timezone"]),
            per_eur=currencies[c["currency"]]["per_eur"],
            minor_digits=currencies[c["currency"]]["minor_digits"],
        )
        for c in doc["cities"]
    ]


class _SectionPlan(NamedTuple):
    name: str
    rows: tuple[int, int]
    seats_per_row: tuple[int, int]
    euros: tuple[int, int]
    chance: float = 1.0  # of the section existing at all


class _Kind(NamedTuple):
    share: float  # of all venues
    radius_km: float  # from the city centre
    sections: tuple[_SectionPlan, ...]


# Mostly small rooms, so that a catalog of 10,000 events with every ticket loads in seconds;
# a few arenas (a few thousand seats) host the hot, queued on-sales.
# fmt: off
_KINDS = {
    "club": _Kind(0.56, 6, (
        _SectionPlan("Floor", (5, 10), (12, 30), (15, 40)),
        _SectionPlan("Balcony", (2, 4), (10, 20), (20, 50), 0.5),
    )),
    "theatre": _Kind(0.32, 6, (
        _SectionPlan("Stalls", (8, 16), (12, 20), (35, 90)),
        _SectionPlan("Dress Circle", (3, 6), (12, 20), (45, 110)),
        _SectionPlan("Upper Circle", (2, 5), (14, 20), (25, 60), 0.6),
    )),
    "hall": _Kind(0.08, 8, (
        _SectionPlan("Parterre", (20, 30), (24, 36), (40, 120)),
        _SectionPlan("Balcony", (6, 10), (24, 34), (30, 90)),
        _SectionPlan("Boxes", (2, 4), (8, 12), (90, 180), 0.7),
    )),
    "arena": _Kind(0.04, 15, (
        _SectionPlan("Floor", (20, 30), (40, 60), (70, 160)),
        *(_SectionPlan(f"Lower {n}", (15, 22), (25, 35), (60, 120)) for n in range(101, 105)),
        *(_SectionPlan(f"Upper {n}", (10, 16), (25, 35), (35, 80)) for n in range(201, 205)),
    )),
}
# fmt: on
MIN_ARENAS = 6


def venue_kinds(count: int) -> list[str]:
    arenas = max(MIN_ARENAS, round(count * _KINDS["arena"].share))
    kinds = ["arena"] * arenas
    for kind in ("hall", "theatre"):
        kinds += [kind] * round(count * _KINDS[kind].share)
    return kinds + ["club"] * (count - len(kinds))


def make_venues(rng: random.Random, cities: list[City], count: int) -> list[Venue]:
    """``count`` venues; every city gets one before any gets a second."""
    words = data("names.json")
    kinds = venue_kinds(count)
    rng.shuffle(kinds)
    order = [cities[i % len(cities)] for i in range(count)]
    rng.shuffle(order)
    names: set[str] = set()
    venues = []
    for kind, city in zip(kinds, order, strict=True):
        plan = _KINDS[kind]
        name = unique_name(names, partial(_venue_name, rng, words, kind, city))
        sections = tuple(
            Section(
                name=section.name,
                rows=rng.randint(*section.rows),
                seats_per_row=rng.randint(*section.seats_per_row),
                price_cents=city.price(rng.uniform(*section.euros)),
            )
            for section in plan.sections
            if section.chance >= 1.0 or rng.random() < section.chance
        )
        lat, lon = _near(rng, city, plan.radius_km)
        venues.append(Venue(name, kind, city, lat, lon, sections))
    return venues


def _venue_name(rng: random.Random, words: dict[str, Any], kind: str, city: City) -> str:
    pattern: str = rng.choice(words[f"{kind}_names"])
    return pattern.format(
        city=city.name,
        adj=rng.choice(words["adjectives"]),
        noun=rng.choice(words["nouns"]),
        singular=rng.choice(words["singular_nouns"]),
        last=rng.choice(words["last_names"]),
    )


def _near(rng: random.Random, city: City, radius_km: float) -> tuple[float, float]:
    # Uniform over the disc (sqrt), and a degree of longitude shrinks with latitude.
    distance = radius_km * math.sqrt(rng.random())
    bearing = rng.uniform(0, 2 * math.pi)
    dlat = distance * math.cos(bearing) / KM_PER_DEGREE
    dlon = distance * math.sin(bearing) / (KM_PER_DEGREE * math.cos(math.radians(city.lat)))
    return round(city.lat + dlat, 6), round(city.lon + dlon, 6)


def unique_name(seen: set[str], make: Callable[[], str], attempts: int = 50) -> str:
    """A name not in ``seen`` (then added); numbered when the word lists run out."""
    for _ in range(attempts):
        name = make()
        if name not in seen:
            break
    else:
        base, n = name, 2
        while f"{base} {n}" in seen:
            n += 1
        name = f"{base} {n}"
    seen.add(name)
    return name
