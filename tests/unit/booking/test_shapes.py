"""What a fan reads of a hold, a booking and a ticket: one JSON form each."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from ticketing.domain.booking_shapes import Booking, Hold, Ticket, TicketState

AT = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)
SEATS = (Ticket(11, "Floor", "A", 1, 4000), Ticket(12, "Floor", "A", 2, 4000))


def test_a_hold_shows_its_seats_their_total_and_when_it_ends() -> None:
    hold = Hold(uuid.UUID(int=1), 7, SEATS, "EUR", AT + timedelta(minutes=10))
    assert hold.to_json() == {
        "hold_id": "00000000-0000-0000-0000-000000000001",
        "event_id": 7,
        "tickets": [
            {"id": 11, "seat": {"section": "Floor", "row": "A", "number": 1}, "price_cents": 4000},
            {"id": 12, "seat": {"section": "Floor", "row": "A", "number": 2}, "price_cents": 4000},
        ],
        "amount_cents": 8000,
        "currency": "EUR",
        "expires_at": "2026-12-05T20:10:00Z",
        "status": "held",
    }


def test_a_booking_read_back_from_its_row_matches_the_one_confirm_answered() -> None:
    row = {
        "id": uuid.UUID(int=2),
        "hold_id": uuid.UUID(int=1),
        "status": "confirmed",
        "amount_cents": 8000,
        "currency": "EUR",  # char(3): what the table gives back
        "payment_intent_id": "pi_1",
        "created_at": AT,
    }
    read = Booking.of(row, SEATS).to_json()
    answered = Booking(row["id"], row["hold_id"], "confirmed", SEATS, 8000, "EUR", "pi_1", AT)
    assert read == answered.to_json()
    assert read["created_at"] == "2026-12-05T20:00:00Z"
    assert [t["id"] for t in read["tickets"]] == [11, 12]


def reserved(live: bool) -> TicketState:
    return TicketState(11, "reserved", live, uuid.UUID(int=1), AT, hold_owner="ann")


def test_a_ticket_shows_its_hold_to_its_holder_and_to_admins_only() -> None:
    assert reserved(True).to_json("ann", admin=False) == {
        "ticket_id": 11,
        "status": "reserved",
        "hold_id": "00000000-0000-0000-0000-000000000001",
        "expires_at": "2026-12-05T20:00:00Z",
    }
    assert reserved(True).to_json("bob", admin=False) == {"ticket_id": 11, "status": "reserved"}
    assert "hold_id" in reserved(True).to_json("bob", admin=True)


def test_a_seat_whose_hold_lapsed_reads_available_even_to_its_holder() -> None:
    assert reserved(False).to_json("ann", admin=False) == {"ticket_id": 11, "status": "available"}


def test_a_booked_ticket_names_its_booking_to_its_owner() -> None:
    booked = TicketState(11, "booked", False, booking_id=uuid.UUID(int=2), booking_owner="ann")
    assert booked.to_json("ann", admin=False)["booking_id"].endswith("2")
    assert "booking_id" not in booked.to_json("bob", admin=False)
