"""The demo catalog as plain data: venues, performers and a year of events, no I/O.

Names, venues, seat maps and who plays where come from ``random.Random(seed)`` alone; the
dates come from a second generator, so the same seed gives the same catalog on any day,
only moved along the calendar.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import partial
from typing import Any

from ticketing.demo.seating import City, Venue, data, load_cities, make_venues, unique_name

# How far ahead the hot on-sales open, in minutes: one already selling (the queue is live),
# one in minutes (the pre-queue is visible), the rest over the next days.
HOT_ON_SALE_MINUTES = (-10, 10, 60, 360, 1440, 2880, 4320, 7200, 10080, 14400)
# Relative chance that an event is booked into a venue of each kind.
VENUE_DEMAND = {"club": 1.0, "theatre": 1.0, "hall": 0.5, "arena": 0.08}
SOLO_KINDS = {"singer", "singer-songwriter", "rapper", "guitarist", "pianist", "producer"}
ENSEMBLE_KINDS = {"quartet", "trio", "big band", "orchestra", "string quartet", "ensemble"}
FUTURE_ON_SALE_SHARE = 0.2
FESTIVAL_SHARE_OF_BIG_VENUES = 0.3


@dataclass(frozen=True, slots=True)
class Performer:
    name: str
    genre: str
    description: str
    tour: str


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    description: str
    starts_at: datetime
    on_sale_at: datetime
    venue: int  # index into Catalog.venues
    performer: int  # index into Catalog.performers
    queue_enabled: bool
    currency: str


@dataclass(frozen=True, slots=True)
class Catalog:
    cities: list[City]
    venues: list[Venue]
    performers: list[Performer]
    events: list[Event]


def sizes(events: int) -> tuple[int, int]:
    """How many venues and performers a catalog of ``events`` events gets."""
    venues = max(len(load_cities()), events // 40)
    performers = max(len(data("names.json")["headliners"]) + 50, events // 8)
    return venues, performers


def hot_count(events: int) -> int:
    return min(events, len(HOT_ON_SALE_MINUTES), max(5, events // 1000))


def build_catalog(seed: int, events: int, now: datetime) -> Catalog:
    rng = random.Random(seed)
    dates = random.Random(f"{seed}:dates")
    cities = load_cities()
    venue_count, performer_count = sizes(events)
    venues = make_venues(rng, cities, venue_count)
    performers = make_performers(rng, cities, performer_count)
    hot = hot_events(venues, performers, now, hot_count(events))
    regular = make_events(rng, dates, venues, performers, now, events - len(hot))
    return Catalog(cities, venues, performers, hot + regular)


def make_performers(rng: random.Random, cities: list[City], count: int) -> list[Performer]:
    """The headliners of the hot on-sales first, then ``count`` minus those generated acts."""
    words = data("names.json")
    names: set[str] = set()
    performers = []
    for name, genre, tour in words["headliners"]:
        names.add(name)
        description = f"{genre.capitalize()} headliner filling arenas on every continent."
        performers.append(Performer(name, genre, description, tour))
    genres = list(words["genres"])
    while len(performers) < count:
        genre = rng.choice(genres)
        kind = rng.choice(words["genres"][genre])
        name = unique_name(names, partial(_act_name, rng, words, genre, kind))
        home = rng.choice(cities).name
        description = (
            f"{genre.capitalize()} {kind} from {home}, {rng.choice(words['acclaim'])}. "
            f"Active since {rng.randint(1978, 2023)}."
        )
        performers.append(Performer(name, genre, description, _tour_name(rng, words)))
    return performers


def _act_name(rng: random.Random, words: dict[str, Any], genre: str, kind: str) -> str:
    def pick(key: str) -> str:
        word: str = rng.choice(words[key])
        return word

    if kind in ("DJ", "producer") and rng.random() < 0.6:
        return f"DJ {pick('singular_nouns')}" if kind == "DJ" else pick("singular_nouns").upper()
    if kind in SOLO_KINDS:
        return f"{pick('first_names')} {pick('last_names')}"
    if kind in ENSEMBLE_KINDS:
        return f"The {pick('last_names')} {kind.title()}"
    return rng.choice(
        (
            f"The {pick('adjectives')} {pick('nouns')}",
            f"{pick('adjectives')} {pick('nouns')}",
            f"{pick('adjectives')} {pick('singular_nouns')}",
            f"{pick('first_names')} {pick('last_names')} & The {pick('nouns')}",
        )
    )


def _tour_name(rng: random.Random, words: dict[str, Any]) -> str:
    def pick(key: str) -> str:
        word: str = rng.choice(words[key])
        return word

    return rng.choice(
        (
            f"The {pick('adjectives')} {pick('singular_nouns')} Tour",
            f"{pick('singular_nouns')} {pick('tour_words')}",
            f"{pick('adjectives')} {pick('nouns')} {pick('tour_words')}",
        )
    )


def hot_events(
    venues: list[Venue], performers: list[Performer], now: datetime, count: int
) -> list[Event]:
    """The queued on-sales: a headliner at an arena, opening soon, playing in a few months."""
    arenas = [i for i, v in enumerate(venues) if v.kind == "arena"]
    now = now.replace(second=0, microsecond=0)
    events = []
    for i in range(count):
        venue = venues[arenas[i % len(arenas)]]
        performer = performers[i]
        starts_at = _evening(venue.city, now, 60 + 17 * i, time(20, 0))
        events.append(
            Event(
                name=f"{performer.name} — {performer.tour}",
                description=(
                    f"{performer.tour}: {performer.name} live at {venue.name}, {venue.city.name}. "
                    "Demand is expected to exceed supply many times over: fans who join before "
                    "the on-sale are placed in the waiting room in a random order."
                ),
                starts_at=starts_at,
                on_sale_at=now + timedelta(minutes=HOT_ON_SALE_MINUTES[i]),
                venue=arenas[i % len(arenas)],
                performer=i,
                queue_enabled=True,
                currency=venue.city.currency,
            )
        )
    return events


def make_events(
    rng: random.Random,
    dates: random.Random,
    venues: list[Venue],
    performers: list[Performer],
    now: datetime,
    count: int,
) -> list[Event]:
    words = data("names.json")
    first_act = len(words["headliners"])
    weights = [VENUE_DEMAND[v.kind] for v in venues]
    chosen = rng.choices(range(len(venues)), weights=weights, k=count)
    events = []
    for n, index in enumerate(chosen):
        venue = venues[index]
        city = venue.city
        act = rng.randrange(first_act, len(performers))
        performer = performers[act]
        starts_at = _evening(city, now, _show_day(dates, city, now), _show_time(dates))
        local = starts_at.astimezone(city.timezone)
        if venue.kind in ("hall", "arena") and rng.random() < FESTIVAL_SHARE_OF_BIG_VENUES:
            name, description = _festival(rng, words, performers, act, venue, local)
        else:
            name = rng.choice(
                (
                    f"{performer.name} — {performer.tour}",
                    f"{performer.name} — {performer.tour}",
                    f"{performer.name} — Live in {city.name}",
                    f"An Evening with {performer.name}",
                )
            )
            doors = (local - timedelta(hours=1)).strftime("%H:%M")
            description = (
                f"{performer.description} Live at {venue.name}, {city.name}. "
                f"Doors {doors}, show {local:%H:%M}."
            )
        events.append(
            Event(
                name=name,
                description=description,
                starts_at=starts_at,
                on_sale_at=_on_sale(dates, city, now, starts_at, always_open=n == 0),
                venue=index,
                performer=act,
                queue_enabled=False,
                currency=city.currency,
            )
        )
    return events


def _festival(
    rng: random.Random,
    words: dict[str, Any],
    performers: list[Performer],
    headliner: int,
    venue: Venue,
    local: datetime,
) -> tuple[str, str]:
    festival = rng.choice(
        (
            f"{venue.city.name} {rng.choice(words['singular_nouns'])}",
            f"{rng.choice(words['adjectives'])} {rng.choice(words['singular_nouns'])}",
        )
    )
    name = f"{festival} {rng.choice(words['festival_words'])} {local.year}"
    support = [p.name for p in rng.sample(performers[len(words["headliners"]) :], 3)]
    description = (
        f"{name} at {venue.name}, {venue.city.name}: headlined by {performers[headliner].name}, "
        f"with {support[0]}, {support[1]} and {support[2]}. Gates {local:%H:%M}."
    )
    return name, description


def _show_day(rng: random.Random, city: City, now: datetime) -> int:
    """Days from today; 362 at most so that the evening stays inside the coming 365 days."""
    today = now.astimezone(city.timezone).date()
    day = rng.randint(1, 362)
    # Fewer shows early in the week: redraw half of the Monday to Wednesday dates.
    if (today + timedelta(days=day)).weekday() < 3 and rng.random() < 0.5:
        day = rng.randint(1, 362)
    return day


def _show_time(rng: random.Random) -> time:
    minutes = rng.randrange(18 * 60 + 30, 21 * 60 + 31, 15)
    return time(minutes // 60, minutes % 60)


def _evening(city: City, now: datetime, day: int, at: time) -> datetime:
    """``at`` local time ``day`` days from today in the city, in UTC."""
    local_day = now.astimezone(city.timezone).date() + timedelta(days=day)
    return datetime.combine(local_day, at, city.timezone).astimezone(UTC)


def _on_sale(
    rng: random.Random, city: City, now: datetime, starts_at: datetime, always_open: bool = False
) -> datetime:
    """10:00 local, weeks before today for most shows, on a coming day for some. The first
    event after the hot ones (the README's booking example, without a waiting room) is
    always on sale; the draw is made all the same, so every other event stays as it was."""
    days_ahead = (starts_at - now).days
    if days_ahead >= 3 and rng.random() < FUTURE_ON_SALE_SHARE and not always_open:
        # At most the day before the show's date, so the on-sale always comes first.
        day = rng.randint(1, min(45, days_ahead - 1))
    else:
        day = -rng.randint(1, 120)
    local_day = now.astimezone(city.timezone).date() + timedelta(days=day)
    return datetime.combine(local_day, time(10, 0), city.timezone).astimezone(UTC)
