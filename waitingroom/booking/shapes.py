"""What the booking routes answer, as the document shows it: the JSON of a hold, a booking,
a page of bookings, a ticket's status and a webhook's receipt (built by
:mod:`ticketing.domain.booking_shapes` in the booking worker, passed on as it is), and the
members some problems carry beside the standard five."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from ticketing.api import ProblemFields, Shape


class BookedSeat(Shape):
    """Where a ticket sits."""

    section: str
    row: str
    number: int


class BookedTicket(Shape):
    """A seat of a hold or a booking, and its price."""

    id: int
    seat: BookedSeat
    price_cents: int


class Hold(Shape):
    """Seats kept for the fan until expires_at, the price of all of them to pay."""

    hold_id: UUID
    event_id: int
    tickets: list[BookedTicket] = Field(description="In ticket id order.")
    amount_cents: int = Field(description="The sum of the tickets' prices.")
    currency: str
    expires_at: datetime = Field(
        description="Nobody else can hold or buy these tickets until then "
        "(TICKETING_HOLD_TTL_SECONDS, default 10 minutes)."
    )
    status: Literal["held"]


class Booking(Shape):
    """A paid hold."""

    booking_id: UUID
    hold_id: UUID
    status: Literal["confirmed", "refunded"] = Field(
        description="refunded: paid after its hold expired and its seats were taken; the "
        "payment was refunded automatically."
    )
    tickets: list[BookedTicket] = Field(description="In ticket id order.")
    amount_cents: int
    currency: str
    payment_intent_id: str | None
    created_at: datetime


class BookingPage(Shape):
    """A page of the caller's bookings, newest first."""

    items: list[Booking]
    next_cursor: str | None = Field(description="The cursor of the next page; null on the last.")


class TicketStatus(Shape):
    """One ticket's booking status. A seat whose hold lapsed reads available."""

    ticket_id: int
    status: Literal["available", "reserved", "booked"]
    hold_id: UUID | None = Field(
        default=None, description="Reserved: shown to the hold's owner (and admins) only."
    )
    expires_at: datetime | None = Field(default=None, description="With hold_id.")
    booking_id: UUID | None = Field(
        default=None, description="Booked: shown to the booking's owner (and admins) only."
    )


class StripeEventReceived(Shape):
    """Stripe may stop delivering this event: it is applied, or was already."""

    received: Literal[True]
    duplicate: bool | None = Field(
        default=None, description="true: the event had been applied before; nothing changed."
    )


class ReserveConflict(ProblemFields):
    """What a refused reserve's 409 carries beside the standard members."""

    unavailable_ticket_ids: list[int] | None = Field(
        default=None,
        description="With tickets_unavailable: the requested tickets someone else holds or "
        "bought (empty for a best-available request that could not be met).",
    )
    on_sale_at: datetime | None = Field(
        default=None, description="With not_on_sale: when the event goes on sale."
    )


class ConfirmConflict(ProblemFields):
    """What a refused confirm's 409 carries beside the standard members."""

    on_sale_at: datetime | None = Field(
        default=None, description="With not_on_sale: when the event goes on sale."
    )


class LimitExceeded(ProblemFields):
    """The per-user cap of tickets for one event, and what the fan has against it."""

    limit: int = Field(description="Tickets one fan may hold or have booked for the event.")
    held_or_booked: int = Field(description="Tickets the fan holds or has booked already.")


class PaymentFailed(ProblemFields):
    """Why Stripe declined the payment."""

    decline_code: str | None = Field(description="Stripe's code for the decline, when it gave one.")
