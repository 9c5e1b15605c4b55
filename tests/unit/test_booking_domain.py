"""Seat choice and the per-user cap, as a fan would notice them."""

from __future__ import annotations

import pytest

from ticketing.domain.booking import LimitExceeded, Seat, check_cap, choose_seats


def seats(*specs: str) -> list[Seat]:
    """ "A1" -> section S, row A, seat 1; ids in the order given."""
    return [Seat(i + 1, "S", spec[0], int(spec[1:])) for i, spec in enumerate(specs)]


def numbers(chosen: list[Seat]) -> list[str]:
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
