"""Seat maps: row labels and the tickets a seat map yields. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    rows: int
    seats_per_row: int
    price_cents: int

    @property
    def capacity(self) -> int:
        return self.rows * self.seats_per_row

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.rows,
            "seats_per_row": self.seats_per_row,
            "price_cents": self.price_cents,
        }


def row_label(index: int) -> str:
    """0 -> "A", 25 -> "Z", 26 -> "AA", 27 -> "AB" (spreadsheet-style, no zero digit)."""
    if index < 0:
        raise ValueError("row index must be >= 0")
    label = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        label = chr(ord("A") + rem) + label
    return label


def sections_of(seat_map: dict[str, Any]) -> list[Section]:
    return [Section(**section) for section in seat_map["sections"]]


def ticket_records(
    event_id: int, sections: list[Section]
) -> Iterator[tuple[int, str, str, int, int]]:
    """(event_id, section, row, number, price_cents) for every seat, in seat-map order."""
    for section in sections:
        for row in range(section.rows):
            label = row_label(row)
            for number in range(1, section.seats_per_row + 1):
                yield (event_id, section.name, label, number, section.price_cents)
