"""How booking commands travel (waitingroom -> booking_worker, request/reply), and the
messages that carry several commands, or their replies, at once.

Commands go to the direct exchange BOOKING_EXCHANGE with routing key
booking_routing_key(event_id, partitions); each partition has one durable queue, so all
commands of one event meet in one queue. The front door publishes persistent messages with
publisher confirms, `correlation_id` = the command's request_id and `reply_to` = its reply
queue; the worker answers on the default exchange with a BookingReply, after commit.
Each message's body is signed (SIGNATURE_HEADER); a worker acts on no unsigned one.
"""

from __future__ import annotations

import hmac
import zlib
from dataclasses import dataclass
from typing import Any

from ticketing.messages.commands import (
    BOOKING_COMMAND_VERSION,
    PAYMENT_COMMANDS,
    Command,
    parse_command,
)
from ticketing.messages.errors import MessageError

BOOKING_EXCHANGE = "ticketing.booking"
BOOKING_QUEUE_PREFIX = "booking.commands."
# Commands that call the payment provider travel apart from the partitions, on one queue
# that every worker's payments stage consumes with many in flight at once: a card payment
# takes Stripe's time (0.3 s and more), and no reserve or release may wait behind one.
BOOKING_PAYMENTS_QUEUE = "booking.payments"
PAYMENTS_ROUTING_KEY = "payments"
BOOKING_DEAD_LETTER_QUEUE = "booking.dead"


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


# Several fans' commands travel in one message: one AMQP publish, confirm, delivery and ack
# (and one reply message) for a whole batch instead of one each, which is most of what a
# request/reply costs (bench/README.md). The front door sends what gathered for a partition
# while its previous publish was being confirmed; each command keeps its own request_id and
# carries the ``correlation_id`` its caller waits on.
BOOKING_BATCH = "booking.batch"
BOOKING_REPLY = "booking.reply"
BOOKING_REPLIES = "booking.replies"
# Header with the number of commands in a message, so a worker sizes its transaction
# before parsing anything.
COMMANDS_HEADER = "x-commands"
# HMAC-SHA256 of the message's body under TICKETING_COMMAND_SECRET, hex. A command says who
# the fan is, their roles and whether the queue admitted them, and the worker believes it:
# so only what the front door signed is a command, not whatever reaches a queue (anyone
# with the broker's login could publish one).
SIGNATURE_HEADER = "x-signature"


def command_signature(secret: str, body: bytes) -> str:
    return hmac.digest(secret.encode(), body, "sha256").hex()


def signed_by(secret: str, body: bytes, signature: object) -> bool:
    """Whether ``signature`` (a header's value, of any type) signs ``body`` under ``secret``."""
    if isinstance(signature, str):
        signature = signature.encode()
    if not isinstance(signature, bytes):
        return False
    return hmac.compare_digest(command_signature(secret, body).encode(), signature)


def booking_batch(commands: list[dict[str, Any]]) -> dict[str, Any]:
    """One message carrying these commands' wire dicts."""
    return {"type": BOOKING_BATCH, "v": BOOKING_COMMAND_VERSION, "commands": commands}


Parsed = Command | MessageError


def parse_booking_message(
    body: Any, correlation_id: str | None = None
) -> list[tuple[Any, Parsed]] | Command:
    """A single command (its ``correlation_id`` the message's), or a batch: per command,
    (what was sent, the command or why it is malformed); a bad command does not spoil its
    batch-mates."""
    if isinstance(body, dict) and body.get("type") == BOOKING_BATCH:
        if body.get("v") != BOOKING_COMMAND_VERSION:
            raise MessageError(f"unsupported version {body.get('v')!r} of {BOOKING_BATCH}")
        commands = body.get("commands")
        if not isinstance(commands, list) or not commands:
            raise MessageError("a batch needs a non-empty list of commands")
        parsed: list[tuple[Any, Parsed]] = []
        for raw in commands:
            try:
                command = parse_command(raw)
                if command.correlation_id is None:
                    raise MessageError("a batched command needs its correlation_id")
                parsed.append((raw, command))
            except MessageError as exc:
                parsed.append((raw, exc))
        return parsed
    if isinstance(body, dict) and correlation_id is not None:
        body = {**body, "correlation_id": correlation_id}
    return parse_command(body)


@dataclass(frozen=True, slots=True)
class BookingReply:
    """A worker's answer to one command: the HTTP status and body the front door returns as
    they are (a problem document when status >= 400; None for 204)."""

    status: int
    body: dict[str, Any] | None
    correlation_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The answer alone, in a message of its own (its correlation id the message's)."""
        return {
            "type": BOOKING_REPLY,
            "v": BOOKING_COMMAND_VERSION,
            "status": self.status,
            "body": self.body,
        }


@dataclass(frozen=True, slots=True)
class BookingReplies:
    """The answers to one batch message, each naming its command's correlation id."""

    replies: tuple[BookingReply, ...]

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": BOOKING_REPLIES,
            "v": BOOKING_COMMAND_VERSION,
            "replies": [
                {"correlation_id": r.correlation_id, "status": r.status, "body": r.body}
                for r in self.replies
            ],
        }


def parse_booking_replies(body: Any, correlation_id: str | None) -> list[BookingReply]:
    """The answers a reply message carries (a single reply names the message's correlation
    id); what is not an answer is left out."""
    if not isinstance(body, dict):
        return []
    if body.get("type") == BOOKING_REPLIES:
        answers = body.get("replies") or []
    else:
        answers = [{**body, "correlation_id": correlation_id}]
    return [
        BookingReply(a["status"], a.get("body"), a.get("correlation_id"))
        for a in answers
        if isinstance(a, dict) and isinstance(a.get("status"), int)
    ]
