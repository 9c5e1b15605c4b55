"""Reserve rules with no I/O: what a fan may ask for, the per-fan cap, which free seats a
request gets. The worker locks the rows these decisions need, feeds them in, and writes
what comes out (booking_worker.reserve)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby

from ticketing.domain.booking_shapes import Ticket

MAX_ID = 2**63 - 1  # a PostgreSQL bigint

# Free seats a window locks per seat asked for, plus a slack: room to find an adjacent run
# for every fan of a batch, while leaving most of the house to other workers' windows.
# Both reserve paths once locked windows of their own size (4x for a lone reserve, 2x + 16
# for a batch); a lone reserve is now a batch of one, and 2x + 16 gives it at least the
# 4x it had for every party up to the cap of 8, without a window per fan twice a batch's.
WINDOW_FACTOR = 2
WINDOW_SLACK = 16
# Candidates one fan's seats are chosen among, per seat asked for: the first free seats of
# the window, so each choice stays small however large the batch's window is.
CANDIDATES_PER_SEAT = 4


class Refused(Exception):
    """A request the rules turn down; the worker answers it as a problem."""


class InvalidRequest(Refused):
    """The request itself is malformed (400 validation_error)."""


class LimitExceeded(Refused):
    """The request would take a fan past the per-event ticket cap."""

    def __init__(self, cap: int, already: int, requested: int) -> None:
        super().__init__(
            f"At most {cap} tickets per fan for this event: you hold or bought {already}, "
            f"and asked for {requested} more."
        )
        self.cap = cap
        self.already = already
        self.requested = requested


class SeatsUnavailable(Refused):
    """Some asked-for seats are taken (their ids), or not enough are free (no ids)."""

    def __init__(self, detail: str, ticket_ids: list[int]) -> None:
        super().__init__(detail)
        self.ticket_ids = ticket_ids


def is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


@dataclass(frozen=True, slots=True)
class SeatRequest:
    """What one fan asks for: these seats, or ``quantity`` best available (in ``section``)."""

    ticket_ids: tuple[int, ...]  # () for best available
    quantity: int
    section: str | None = None

    @classmethod
    def of(
        cls, ticket_ids: Sequence[int] | None, quantity: int | None, section: str | None
    ) -> SeatRequest:
        if ticket_ids is not None:
            if not ticket_ids or not all(is_id(i) for i in ticket_ids):
                raise InvalidRequest("ticket_ids must be a list of ticket ids.")
            if len(set(ticket_ids)) != len(ticket_ids):
                raise InvalidRequest("ticket_ids must not repeat a ticket.")
            return cls(tuple(ticket_ids), len(ticket_ids))
        if quantity is None or quantity < 1:
            raise InvalidRequest("quantity must be a positive integer.")
        return cls((), quantity, section)


def check_cap(cap: int, already: int, requested: int) -> None:
    """Held (unexpired) plus booked tickets after this request may not exceed ``cap``."""
    if already + requested > cap:
        raise LimitExceeded(cap, already, requested)


def window_size(seats_asked: int) -> int:
    """How many free seats to lock for requests asking ``seats_asked`` best available."""
    return seats_asked * WINDOW_FACTOR + WINDOW_SLACK


def choose_seats(free: Sequence[Ticket], quantity: int) -> list[Ticket]:
    """``quantity`` seats from ``free``: the first run of adjacent seats in one row (numbers
    consecutive) when there is one; else the fewest rows, filling the fullest rows first so
    the party sits as close together as it can; [] when there are not enough seats."""
    if quantity < 1 or len(free) < quantity:
        return []
    ordered = sorted(free, key=lambda s: (s.section, s.row, s.number))
    rows = [list(seats) for _, seats in groupby(ordered, key=lambda s: (s.section, s.row))]
    for row in rows:
        run: list[Ticket] = []
        for seat in row:
            if run and seat.number != run[-1].number + 1:
                run = []
            run.append(seat)
            if len(run) == quantity:
                return run
    chosen: list[Ticket] = []
    for row in sorted(rows, key=len, reverse=True):
        chosen.extend(row[: quantity - len(chosen)])
        if len(chosen) == quantity:
            break
    return sorted(chosen, key=lambda s: (s.section, s.row, s.number))


class SeatWindow:
    """Free seats in seat order (locked by the caller), handed out front first."""

    def __init__(self, seats: Sequence[Ticket]) -> None:
        self.seats = list(seats)
        self.front = 0  # seats before it are all taken

    def take(self, quantity: int, taken: set[int]) -> list[Ticket]:
        """``quantity`` seats nobody took yet, adjacent if the first free ones hold such a
        run; [] when the window has too few."""
        while self.front < len(self.seats) and self.seats[self.front].id in taken:
            self.front += 1
        candidates: list[Ticket] = []
        for seat in itertools.islice(self.seats, self.front, None):
            if seat.id not in taken:
                candidates.append(seat)
                if len(candidates) == quantity * CANDIDATES_PER_SEAT:
                    break
        return choose_seats(candidates, quantity)


def allocate(
    asks: Sequence[tuple[str, SeatRequest]],
    already: Mapping[str, int],
    cap: int,
    free_by_id: Mapping[int, Ticket],
    windows: Mapping[str | None, SeatWindow],
) -> list[list[Ticket] | Refused]:
    """Per (fan, request), in order: the seats it gets (in id order), or why not. Each fan's
    count grows with what they were given earlier in the list; a seat both asked for by id
    and in a window goes to whoever comes first. ``free_by_id``: the asked-for seats that
    are free; ``windows``: free seats per section asked for best available."""
    counts = dict(already)
    taken: set[int] = set()
    decided: list[list[Ticket] | Refused] = []
    for user, ask in asks:
        try:
            check_cap(cap, counts.get(user, 0), ask.quantity)
        except LimitExceeded as exc:
            decided.append(exc)
            continue
        if ask.ticket_ids:
            missing = [t for t in ask.ticket_ids if t not in free_by_id or t in taken]
            if missing:
                detail = "Some of these tickets are no longer available."
                decided.append(SeatsUnavailable(detail, sorted(missing)))
                continue
            seats = [free_by_id[t] for t in ask.ticket_ids]
        else:
            seats = windows[ask.section].take(ask.quantity, taken)
            if not seats:
                detail = f"Not enough tickets available for {ask.quantity} seats."
                decided.append(SeatsUnavailable(detail, []))
                continue
        taken.update(s.id for s in seats)
        counts[user] = counts.get(user, 0) + len(seats)
        decided.append(sorted(seats, key=lambda s: s.id))
    return decided
