"""Versioned wire messages. Every message carries ``type`` and ``v``; a consumer rejects
versions it does not know (to the dead-letter queue) rather than guessing.

- :mod:`ticketing.messages.catalog`: ``catalog.event.changed`` (outbox -> search_sync);
- :mod:`ticketing.messages.commands`: the booking commands, one typed class per kind;
- :mod:`ticketing.messages.booking`: how they travel (exchange, partitions, batches) and
  the worker's replies.

Every public name is importable from here.
"""

from ticketing.messages.booking import (
    BOOKING_BATCH,
    BOOKING_DEAD_LETTER_QUEUE,
    BOOKING_EXCHANGE,
    BOOKING_PAYMENTS_QUEUE,
    BOOKING_QUEUE_PREFIX,
    BOOKING_REPLIES,
    BOOKING_REPLY,
    COMMANDS_HEADER,
    PAYMENTS_ROUTING_KEY,
    BookingReplies,
    BookingReply,
    Parsed,
    booking_batch,
    booking_routing_key,
    command_routing_key,
    parse_booking_message,
    parse_booking_replies,
)
from ticketing.messages.catalog import (
    CATALOG_EXCHANGE,
    EVENT_CHANGE_REASONS,
    EVENT_CHANGED,
    EVENT_CHANGED_VERSION,
    event_changed,
    parse_event_changed,
)
from ticketing.messages.commands import (
    BOOKING_COMMAND_VERSION,
    BOOKING_COMMANDS,
    COMMAND_TYPES,
    CONFIRM,
    GET_BOOKING,
    LIST_BOOKINGS,
    PAYMENT_COMMANDS,
    RELEASE,
    RESERVE,
    STRIPE_EVENT,
    TICKET_STATUS,
    Command,
    Confirm,
    GetBooking,
    ListBookings,
    Release,
    Reserve,
    StripeEvent,
    TicketStatus,
    parse_command,
)
from ticketing.messages.errors import MessageError

__all__ = [
    "BOOKING_BATCH",
    "BOOKING_COMMANDS",
    "BOOKING_COMMAND_VERSION",
    "BOOKING_DEAD_LETTER_QUEUE",
    "BOOKING_EXCHANGE",
    "BOOKING_PAYMENTS_QUEUE",
    "BOOKING_QUEUE_PREFIX",
    "BOOKING_REPLIES",
    "BOOKING_REPLY",
    "CATALOG_EXCHANGE",
    "COMMANDS_HEADER",
    "COMMAND_TYPES",
    "CONFIRM",
    "EVENT_CHANGED",
    "EVENT_CHANGED_VERSION",
    "EVENT_CHANGE_REASONS",
    "GET_BOOKING",
    "LIST_BOOKINGS",
    "PAYMENTS_ROUTING_KEY",
    "PAYMENT_COMMANDS",
    "RELEASE",
    "RESERVE",
    "STRIPE_EVENT",
    "TICKET_STATUS",
    "BookingReplies",
    "BookingReply",
    "Command",
    "Confirm",
    "GetBooking",
    "ListBookings",
    "MessageError",
    "Parsed",
    "Release",
    "Reserve",
    "StripeEvent",
    "TicketStatus",
    "booking_batch",
    "booking_routing_key",
    "command_routing_key",
    "event_changed",
    "parse_booking_message",
    "parse_booking_replies",
    "parse_command",
    "parse_event_changed",
]
