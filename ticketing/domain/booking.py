"""Booking rules with no I/O: which free seats a best-available request gets, and the
per-user cap. The worker feeds these the rows it locked and applies the answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby


@dataclass(frozen=True, slots=True)
class Seat:
    ticket_id: int
    section: str
    row: str
    number: int


class LimitExceeded(Exception):
    """The request would take a fan past the per-event ticket cap."""

    def __init__(self, cap: int, already: int, requested: int) -> None:
        super().__init__(
            f"At most {cap} tickets per fan for this event: you hold or bought {already}, "
            f"and asked for {requested} more."
        )
        self.cap = cap
        self.already = already
        self.requested = requested


def check_cap(cap: int, already: int, requested: int) -> None:
    """Held (unexpired) plus booked tickets after this request may not exceed ``cap``."""
    if already + requested > cap:
        raise LimitExceeded(cap, already, requested)


def choose_seats(free: Sequence[Seat], quantity: int) -> list[Seat]:
    """``quantity`` seats from ``free``: the first run of adjacent seats in one row (numbers
    consecutive) when there is one; else the fewest rows, filling the fullest rows first so
    the party sits as close together as it can; [] when there are not enough seats."""
    if quantity < 1 or len(free) < quantity:
        return []
    ordered = sorted(free, key=lambda s: (s.section, s.row, s.number))
    rows = [list(seats) for _, seats in groupby(ordered, key=lambda s: (s.section, s.row))]
    for row in rows:
        run: list[Seat] = []
        for seat in row:
            if run and seat.number != run[-1].number + 1:
                run = []
            run.append(seat)
            if len(run) == quantity:
                return run
    chosen: list[Seat] = []
    for row in sorted(rows, key=len, reverse=True):
        chosen.extend(row[: quantity - len(chosen)])
        if len(chosen) == quantity:
            break
    return sorted(chosen, key=lambda s: (s.section, s.row, s.number))
