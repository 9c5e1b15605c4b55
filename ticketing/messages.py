"""Versioned wire messages. Every message carries ``type`` and ``v``; a consumer rejects
versions it does not know (to the dead-letter queue) rather than guessing."""

from __future__ import annotations

import zlib
from typing import Any

CATALOG_EXCHANGE = "ticketing.catalog"

# Routing key of "the view of this event changed; re-read it from the source of truth".
EVENT_CHANGED = "catalog.event.changed"
EVENT_CHANGED_VERSION = 1

EVENT_CHANGE_REASONS = frozenset({"created", "edited", "availability", "reindex"})


class MessageError(ValueError):
    """A message that does not match its schema; it goes to the dead-letter queue."""


def event_changed(event_id: int, reason: str) -> dict[str, Any]:
    if reason not in EVENT_CHANGE_REASONS:
        raise ValueError(f"unknown change reason {reason!r}")
    return {
        "type": EVENT_CHANGED,
        "v": EVENT_CHANGED_VERSION,
        "event_id": event_id,
        "reason": reason,
    }


def parse_event_changed(body: dict[str, Any]) -> int:
    """The event id of a valid ``catalog.event.changed`` message."""
    if body.get("type") != EVENT_CHANGED:
        raise MessageError(f"unexpected message type {body.get('type')!r}")
    if body.get("v") != EVENT_CHANGED_VERSION:
        raise MessageError(f"unsupported version {body.get('v')!r} of {EVENT_CHANGED}")
    event_id = body.get("event_id")
    if not isinstance(event_id, int) or isinstance(event_id, bool) or event_id < 1:
        raise MessageError(f"bad event_id {event_id!r}")
    return event_id


# --- Booking commands (waitingroom -> booking_worker, request/reply) ----------------------
#
# Commands go to the direct exchange BOOKING_EXCHANGE with routing key
# booking_routing_key(event_id, partitions); each partition has one durable queue, so all
# commands of one event meet in one queue. The front door publishes persistent messages with
# publisher confirms, `correlation_id` = the command's request_id and `reply_to` = its reply
# queue; the worker answers on the default exchange with a BookingReply, after commit.
BOOKING_EXCHANGE = "ticketing.booking"
BOOKING_QUEUE_PREFIX = "booking.commands."
# Commands that call the payment provider travel apart from the partitions, on one queue
# that every worker's payments stage consumes with many in flight at once: a card payment
# takes Stripe's time (0.3 s and more), and no reserve or release may wait behind one.
BOOKING_PAYMENTS_QUEUE = "booking.payments"
PAYMENTS_ROUTING_KEY = "payments"
BOOKING_DEAD_LETTER_QUEUE = "booking.dead"
BOOKING_COMMAND_VERSION = 1

RESERVE = "booking.reserve"  # event_id, ticket_ids | quantity (+ section), admitted
# ... or replay_only: answer the stored reply of request_id, or refuse without acting
CONFIRM = "booking.confirm"  # hold_id, payment_method
RELEASE = "booking.release"  # hold_id
TICKET_STATUS = "booking.ticket_status"  # ticket_id
GET_BOOKING = "booking.get"  # booking_id
LIST_BOOKINGS = "booking.list"  # limit, cursor
STRIPE_EVENT = "booking.stripe_event"  # event: a verified Stripe event object
BOOKING_COMMANDS = frozenset(
    {RESERVE, CONFIRM, RELEASE, TICKET_STATUS, GET_BOOKING, LIST_BOOKINGS, STRIPE_EVENT}
)
PAYMENT_COMMANDS = frozenset({CONFIRM, STRIPE_EVENT})


def booking_routing_key(partition_key: int | str, partitions: int) -> str:
    """Partition of a command: by event for reserves, by a stable hash otherwise."""
    if isinstance(partition_key, int):
        return str(partition_key % partitions)
    return str(zlib.crc32(partition_key.encode()) % partitions)


def command_routing_key(kind: str, partition_key: int | str, partitions: int) -> str:
    """Where a command goes: the payments queue for payment commands, else its partition."""
    if kind in PAYMENT_COMMANDS:
        return PAYMENTS_ROUTING_KEY
    return booking_routing_key(partition_key, partitions)


def booking_command(
    kind: str, request_id: str, user_id: str, *, roles: list[str] | None = None, **fields: Any
) -> dict[str, Any]:
    """A versioned command envelope. ``request_id`` is the idempotency key: a worker that
    already applied it answers with the stored reply instead of acting again."""
    if kind not in BOOKING_COMMANDS:
        raise ValueError(f"unknown booking command {kind!r}")
    return {
        "type": kind,
        "v": BOOKING_COMMAND_VERSION,
        "request_id": request_id,
        "user_id": user_id,
        "roles": roles or [],
        **fields,
    }


def parse_booking_command(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise MessageError("a booking command must be a JSON object")
    if body.get("type") not in BOOKING_COMMANDS:
        raise MessageError(f"unknown booking command {body.get('type')!r}")
    if body.get("v") != BOOKING_COMMAND_VERSION:
        raise MessageError(f"unsupported version {body.get('v')!r} of {body.get('type')}")
    for name in ("request_id", "user_id"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise MessageError(f"{name} must be a non-empty string")
    return body


# Several fans' commands travel in one message: one AMQP publish, confirm, delivery and ack
# (and one reply message) for a whole batch instead of one each, which is most of what a
# request/reply costs (bench/README.md). The front door sends what gathered for a partition
# while its previous publish was being confirmed; each command keeps its own request_id and
# carries the ``correlation_id`` its caller waits on.
BOOKING_BATCH = "booking.batch"
BOOKING_REPLIES = "booking.replies"
# Header with the number of commands in a message, so a worker sizes its transaction
# before parsing anything.
COMMANDS_HEADER = "x-commands"


def booking_batch(commands: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": BOOKING_BATCH, "v": BOOKING_COMMAND_VERSION, "commands": commands}


Parsed = dict[str, Any] | MessageError


def parse_booking_message(body: Any) -> list[tuple[Any, Parsed]] | dict[str, Any]:
    """A single command (a dict), or a batch: per command, (what was sent, the command or
    why it is malformed); a bad command does not spoil its batch-mates."""
    if isinstance(body, dict) and body.get("type") == BOOKING_BATCH:
        if body.get("v") != BOOKING_COMMAND_VERSION:
            raise MessageError(f"unsupported version {body.get('v')!r} of {BOOKING_BATCH}")
        commands = body.get("commands")
        if not isinstance(commands, list) or not commands:
            raise MessageError("a batch needs a non-empty list of commands")
        parsed: list[tuple[Any, Parsed]] = []
        for raw in commands:
            try:
                command = parse_booking_command(raw)
                if not isinstance(command.get("correlation_id"), str):
                    raise MessageError("a batched command needs its correlation_id")
                parsed.append((raw, command))
            except MessageError as exc:
                parsed.append((raw, exc))
        return parsed
    return parse_booking_command(body)


def booking_replies(replies: list[tuple[str, int, dict[str, Any] | None]]) -> dict[str, Any]:
    """The replies to one batch message: (correlation_id, status, body) per command."""
    return {
        "type": BOOKING_REPLIES,
        "v": BOOKING_COMMAND_VERSION,
        "replies": [{"correlation_id": c, "status": s, "body": b} for c, s, b in replies],
    }


def booking_reply(status: int, body: dict[str, Any] | None) -> dict[str, Any]:
    """What a worker answers: the HTTP status and body the front door returns as they are
    (a problem document when status >= 400)."""
    return {"type": "booking.reply", "v": BOOKING_COMMAND_VERSION, "status": status, "body": body}
