"""The shapes a fan sees of a booking: a Ticket (a seat and its price), a Hold (seats kept
for a while), a Booking (seats paid for). Each is built into JSON here and nowhere else;
the worker fills them from the rows it read or wrote."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID


class Row(Protocol):
    """A row read by name (a database record, a dict)."""

    def __getitem__(self, key: str, /) -> Any: ...


def rfc3339(value: datetime) -> str:
    """The API's form of an instant (ticketing.validation.rfc3339 for the services)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Ticket:
    """A seat of an event and its price."""

    id: int
    section: str
    row: str
    number: int
    price_cents: int = 0

    @classmethod
    def of(cls, row: Row) -> Ticket:
        """From a row with the columns id, section, row, number, price_cents."""
        return cls(row["id"], row["section"], row["row"], row["number"], row["price_cents"])

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seat": {"section": self.section, "row": self.row, "number": self.number},
            "price_cents": self.price_cents,
        }


def tickets_of(rows: Iterable[Row]) -> tuple[Ticket, ...]:
    """Tickets from rows, in id order."""
    return tuple(sorted((Ticket.of(r) for r in rows), key=lambda t: t.id))


@dataclass(frozen=True, slots=True)
class Hold:
    """Seats kept for a fan until ``expires_at``, the price of all of them to pay."""

    id: UUID
    event_id: int
    tickets: tuple[Ticket, ...]  # in id order
    currency: str
    expires_at: datetime

    @property
    def amount_cents(self) -> int:
        return sum(t.price_cents for t in self.tickets)

    def to_json(self) -> dict[str, Any]:
        return {
            "hold_id": str(self.id),
            "event_id": self.event_id,
            "tickets": [t.to_json() for t in self.tickets],
            "amount_cents": self.amount_cents,
            "currency": self.currency,
            "expires_at": rfc3339(self.expires_at),
            "status": "held",
        }


@dataclass(frozen=True, slots=True)
class Booking:
    """A paid hold: 'confirmed', or 'refunded' when its seats were gone by the time the
    payment arrived."""

    id: UUID
    hold_id: UUID
    status: str
    tickets: tuple[Ticket, ...]  # in id order
    amount_cents: int
    currency: str
    payment_intent_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Row, tickets: Iterable[Ticket]) -> Booking:
        """From a ``bookings`` row and its tickets."""
        return cls(
            row["id"],
            row["hold_id"],
            row["status"],
            tuple(tickets),
            row["amount_cents"],
            row["currency"].strip(),  # char(3)
            row["payment_intent_id"],
            row["created_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "booking_id": str(self.id),
            "hold_id": str(self.hold_id),
            "status": self.status,
            "tickets": [t.to_json() for t in self.tickets],
            "amount_cents": self.amount_cents,
            "currency": self.currency,
            "payment_intent_id": self.payment_intent_id,
            "created_at": rfc3339(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class TicketState:
    """One ticket as the table has it, with its hold's and booking's owners."""

    ticket_id: int
    status: str  # available, reserved or booked
    hold_live: bool  # its hold is 'held' and not past expires_at
    hold_id: UUID | None = None
    expires_at: datetime | None = None
    hold_owner: str | None = None
    booking_id: UUID | None = None
    booking_owner: str | None = None

    def to_json(self, user: str, admin: bool) -> dict[str, Any]:
        """What ``user`` may learn of it: its status, and the hold or booking when it is
        theirs (an admin sees every one). A seat whose hold lapsed reads available: the
        sweeper frees it shortly, and nobody may rely on it meanwhile."""
        body: dict[str, Any] = {"ticket_id": self.ticket_id, "status": self.status}
        if self.status == "reserved" and not self.hold_live:
            body["status"] = "available"
        elif self.status == "reserved" and (admin or self.hold_owner == user):
            body["hold_id"] = str(self.hold_id)
            body["expires_at"] = rfc3339(self.expires_at) if self.expires_at else None
        elif self.status == "booked" and (admin or self.booking_owner == user):
            body["booking_id"] = str(self.booking_id)
        return body
