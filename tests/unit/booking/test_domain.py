"""Reserve rules on in-memory seats (no database): seat choice, the per-fan cap, and a group
of fans' requests decided in order, as each fan would notice them."""

from __future__ import annotations

import pytest

from ticketing.domain.booking import (
    InvalidRequest,
    LimitExceeded,
    SeatRequest,
    SeatsUnavailable,
    SeatWindow,
    allocate,
    check_cap,
    choose_seats,
    window_size,
)
from ticketing.domain.booking_shapes import Ticket

Seat = Ticket


def seats(*specs: str) -> list[Seat]:
    """ "A1" -> section S, row A, seat 1; ids in the order given."""
    return [Seat(i + 1, "S", spec[0], int(spec[1:]), 1000) for i, spec in enumerate(specs)]


def numbers(chosen: list[Seat] | Exception) -> list[str]:
    assert isinstance(chosen, list), chosen
    return [f"{s.row}{s.number}" for s in chosen]


def test_adjacent_seats_in_one_row_win_over_the_first_free_ones() -> None:
    free = seats("A1", "A3", "A5", "B2", "B3", "B4")
    assert numbers(choose_seats(free, 3)) == ["B2", "B3", "B4"]


def test_the_first_adjacent_run_is_taken() -> None:
    free = seats("A1", "A2", "A3", "A4", "B1", "B2")
    assert numbers(choose_seats(free, 2)) == ["A1", "A2"]


def test_without_adjacent_seats_the_party_uses_the_fewest_rows() -> None:
    free = seats("A1", "A3", "B1", "B3", "B5", "C9")
    assert numbers(choose_seats(free, 3)) == ["B1", "B3", "B5"]
    assert len(choose_seats(free, 5)) == 5


def test_too_few_free_seats_gives_nothing() -> None:
    assert choose_seats(seats("A1", "A2"), 3) == []
    assert choose_seats([], 1) == []
    assert choose_seats(seats("A1"), 0) == []


def test_rows_do_not_span_sections() -> None:
    free = [Seat(1, "Floor", "A", 5), Seat(2, "Pit", "A", 6)]
    chosen = choose_seats(free, 2)
    assert len(chosen) == 2  # still served, but not as an adjacent pair
    assert {s.section for s in chosen} == {"Floor", "Pit"}


def test_cap_counts_held_and_booked_tickets() -> None:
    check_cap(8, 6, 2)
    with pytest.raises(LimitExceeded) as err:
        check_cap(8, 6, 3)
    assert err.value.already == 6 and "At most 8" in str(err.value)


def house(rows: str, per_row: int) -> list[Ticket]:
    """Every seat of rows like "AB", in seat order, ids from 1."""
    labels = [f"{row}{n}" for row in rows for n in range(1, per_row + 1)]
    return seats(*labels)


def best(quantity: int, section: str | None = None) -> SeatRequest:
    return SeatRequest.of(None, quantity, section)


def by_id(*ids: int) -> SeatRequest:
    return SeatRequest.of(list(ids), None, None)


def test_fans_in_one_batch_sit_together_one_after_the_other() -> None:
    window = SeatWindow(house("AB", 4))
    ann, bob = allocate([("ann", best(3)), ("bob", best(3))], {}, 8, {}, {None: window})
    assert numbers(ann) == ["A1", "A2", "A3"]
    assert numbers(bob) == ["B1", "B2", "B3"]


def test_a_seat_asked_for_by_id_and_in_the_window_goes_to_whoever_asks_first() -> None:
    free = house("A", 4)
    window = SeatWindow(free)
    asks = [("ann", best(2)), ("bob", by_id(2)), ("cat", by_id(3))]
    ann, bob, cat = allocate(asks, {}, 8, {t.id: t for t in free}, {None: window})
    assert numbers(ann) == ["A1", "A2"]
    assert isinstance(bob, SeatsUnavailable) and bob.ticket_ids == [2]
    assert numbers(cat) == ["A3"]


def test_the_cap_counts_what_a_fan_got_earlier_in_the_same_batch() -> None:
    window = SeatWindow(house("ABC", 6))
    asks = [("ann", best(3)), ("ann", best(6)), ("ann", best(5))]
    first, second, third = allocate(asks, {"ann": 0}, 8, {}, {None: window})
    assert len(numbers(first)) == 3
    assert isinstance(second, LimitExceeded) and second.already == 3
    assert len(numbers(third)) == 5


def test_too_few_seats_refuses_and_takes_none_so_a_smaller_party_still_fits() -> None:
    window = SeatWindow(house("A", 4))
    big, small = allocate([("ann", best(5)), ("bob", best(4))], {}, 8, {}, {None: window})
    assert isinstance(big, SeatsUnavailable) and big.ticket_ids == []
    assert numbers(small) == ["A1", "A2", "A3", "A4"]


def test_a_request_names_seats_once_or_asks_for_at_least_one() -> None:
    assert by_id(7, 3).quantity == 2
    for bad in ([], [1, 1], [0]):
        with pytest.raises(InvalidRequest):
            SeatRequest.of(bad, None, None)
    with pytest.raises(InvalidRequest, match="quantity must be a positive integer"):
        SeatRequest.of(None, 0, None)


def test_a_lone_reserve_locks_at_least_four_seats_per_seat_up_to_the_cap() -> None:
    assert all(window_size(q) >= 4 * q for q in range(1, 9))
