"""Booking commands on the wire: each kind parses into its typed command and goes back to
exactly the JSON the front door has always sent, so old and new processes can run side by
side; what does not fit a schema is refused with MessageError."""

from __future__ import annotations

import pytest

from ticketing.messages import (
    BOOKING_REPLIES,
    BookingReplies,
    BookingReply,
    Command,
    Confirm,
    GetBooking,
    ListBookings,
    MessageError,
    Release,
    Reserve,
    StripeEvent,
    TicketStatus,
    booking_batch,
    parse_booking_message,
    parse_booking_replies,
    parse_command,
)

ENVELOPE = {"v": 1, "request_id": "idem:1", "user_id": "ann", "roles": ["admin"]}

# As the front door sends them (booking_routes, confirm_routes, stripe_webhook), sent_at
# and correlation_id added by its RPC client.
WIRE = [
    {"type": "booking.reserve", **ENVELOPE, "admitted": True, "event_id": 7, "quantity": 2},
    {
        "type": "booking.reserve",
        **ENVELOPE,
        "admitted": False,
        "event_id": 7,
        "quantity": 2,
        "section": "Floor",
    },
    {"type": "booking.reserve", **ENVELOPE, "replay_only": True, "event_id": 7, "ticket_ids": [3]},
    {"type": "booking.confirm", **ENVELOPE, "hold_id": "h", "payment_method": "pm_card_visa"},
    {"type": "booking.release", **ENVELOPE, "hold_id": "h"},
    {"type": "booking.ticket_status", **ENVELOPE, "ticket_id": 9},
    {"type": "booking.get", **ENVELOPE, "booking_id": "b"},
    {"type": "booking.list", **ENVELOPE, "limit": 20, "cursor": None},
    {"type": "booking.list", **ENVELOPE, "limit": 5, "cursor": ["2026-01-01T00:00:00", "x"]},
    {"type": "booking.stripe_event", **ENVELOPE, "event": {"id": "evt_1", "type": "x"}},
]


@pytest.mark.parametrize("wire", WIRE, ids=lambda w: w["type"])
def test_every_command_goes_back_to_the_wire_as_it_came(wire: dict) -> None:
    sent = {**wire, "sent_at": 1.5, "correlation_id": "c-1"}
    command = parse_command(sent)
    assert command.kind == wire["type"] and command.is_admin
    assert command.to_wire() == sent
    assert list(command.to_wire()) == list(sent)  # and in the same key order


FAN = {"request_id": "idem:1", "user_id": "ann", "roles": ("admin",)}
# Each of WIRE as the front door builds it.
BUILT: list[Command] = [
    Reserve(**FAN, admitted=True, event_id=7, quantity=2),
    Reserve(**FAN, admitted=False, event_id=7, quantity=2, section="Floor"),
    Reserve(**FAN, replay_only=True, event_id=7, ticket_ids=(3,)),
    Confirm(**FAN, hold_id="h", payment_method="pm_card_visa"),
    Release(**FAN, hold_id="h"),
    TicketStatus(**FAN, ticket_id=9),
    GetBooking(**FAN, booking_id="b"),
    ListBookings(**FAN),
    ListBookings(**FAN, limit=5, cursor=("2026-01-01T00:00:00", "x")),
    StripeEvent(**FAN, event={"id": "evt_1", "type": "x"}),
]


@pytest.mark.parametrize(
    ("command", "wire"), list(zip(BUILT, WIRE, strict=True)), ids=[w["type"] for w in WIRE]
)
def test_a_typed_command_goes_out_as_the_wire_has_it(command: Command, wire: dict) -> None:
    assert command.to_wire() == wire
    assert list(command.to_wire()) == list(wire)


def test_fields_come_typed() -> None:
    reserve = parse_command(WIRE[2])
    assert isinstance(reserve, Reserve)
    assert reserve.ticket_ids == (3,) and reserve.replay_only and reserve.admitted is None
    listing = parse_command(WIRE[8])
    assert isinstance(listing, ListBookings) and listing.cursor == ("2026-01-01T00:00:00", "x")
    assert Confirm(request_id="r", user_id="u", hold_id="h").payment_method == ""


@pytest.mark.parametrize(
    "body",
    [
        [],
        {**WIRE[0], "type": "booking.nope"},
        {**WIRE[0], "v": 2},
        {**WIRE[0], "request_id": ""},
        {**WIRE[0], "roles": "admin"},
        {**WIRE[0], "event_id": "7"},
        {**WIRE[0], "quantity": True},
        {**WIRE[2], "ticket_ids": [3, "4"]},
        {**WIRE[3], "payment_method": 5},
        {**WIRE[9], "event": {"type": "x"}},
    ],
)
def test_what_does_not_fit_the_schema_is_refused(body: object) -> None:
    with pytest.raises(MessageError):
        parse_command(body)


def test_values_are_the_workers_to_judge() -> None:
    """A quantity of 0 is well formed: the worker answers it 400, as it always has."""
    assert parse_command({**WIRE[0], "quantity": 0}).quantity == 0  # type: ignore[attr-defined]


def test_a_batch_keeps_its_good_commands_and_names_the_bad_one() -> None:
    good = {**WIRE[0], "correlation_id": "c-1"}
    no_correlation = dict(WIRE[4])
    parsed = parse_booking_message(booking_batch([good, no_correlation]))
    assert isinstance(parsed, list)
    (raw_good, command), (raw_bad, refused) = parsed
    assert raw_good is good and isinstance(command, Reserve) and command.correlation_id == "c-1"
    assert raw_bad is no_correlation and isinstance(refused, MessageError)


def test_a_single_command_takes_the_messages_correlation_id() -> None:
    command = parse_booking_message(WIRE[4], "from-the-message")
    assert not isinstance(command, list) and command.correlation_id == "from-the-message"


def test_replies_as_one_answer_or_a_batch_of_them() -> None:
    one = BookingReply(201, {"hold_id": "h"}, "c-1")
    assert one.to_wire() == {
        "type": "booking.reply",
        "v": 1,
        "status": 201,
        "body": {"hold_id": "h"},
    }
    both = BookingReplies((one, BookingReply(204, None, "c-2"))).to_wire()
    assert both["type"] == BOOKING_REPLIES
    assert parse_booking_replies(both, None) == [one, BookingReply(204, None, "c-2")]
    assert parse_booking_replies(one.to_wire(), "c-1") == [one]
