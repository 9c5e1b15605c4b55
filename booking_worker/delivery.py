"""One delivered booking message, as both consumers of a worker see it (the partition
queues' batch loop, :mod:`booking_worker.worker`, and the payments stage,
:mod:`booking_worker.payment_stage`): decoding it into commands, answering, dead-lettering.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from booking_worker.commands import Outcome
from booking_worker.metrics import DEAD_LETTERED, LATENCY, OUTCOMES, QUEUE_WAIT
from ticketing.booking_topology import ERROR_HEADER
from ticketing.dead_letters import dead_letter, park
from ticketing.messages import (
    COMMANDS_HEADER,
    SIGNATURE_HEADER,
    BookingReplies,
    BookingReply,
    Command,
    MessageError,
    parse_booking_message,
    signed_by,
)
from ticketing.problems import Problem

log = logging.getLogger(__name__)

Message = AbstractIncomingMessage


class UnsignedMessage(MessageError):
    """Not signed by a front door (no signature, or a wrong one): nothing in it is read."""


def commands_in(message: Message) -> int:
    """How many commands a message carries, from its header (no parse before the batch)."""
    count = (message.headers or {}).get(COMMANDS_HEADER, 1)
    return count if isinstance(count, int) and count > 0 else 1


@dataclass(slots=True)
class Delivery:
    """One delivered message: its well-formed commands, and answers for the malformed."""

    message: Message
    commands: list[Command]
    batched: bool
    refused: list[tuple[Any, int, dict[str, Any]]] = field(default_factory=list)
    malformed: list[tuple[Any, str]] = field(default_factory=list)

    @classmethod
    def decode(cls, message: Message, secret: str) -> Delivery:
        """The message's commands; :class:`MessageError` when none can be read, and
        :class:`UnsignedMessage` before anything is read when the front door did not sign
        it (``secret``: TICKETING_COMMAND_SECRET)."""
        if not signed_by(secret, message.body, (message.headers or {}).get(SIGNATURE_HEADER)):
            raise UnsignedMessage("not signed with the command secret")
        try:
            body = orjson.loads(message.body)
        except orjson.JSONDecodeError as exc:
            raise MessageError(f"bad JSON: {exc}") from exc
        parsed = parse_booking_message(body, message.correlation_id)
        now = time.time()
        for command in [parsed] if isinstance(parsed, Command) else [c for _, c in parsed]:
            if isinstance(command, Command) and command.sent_at is not None:
                QUEUE_WAIT.observe(max(0.0, now - command.sent_at))
        if isinstance(parsed, Command):
            return cls(message, [parsed], False)
        unit = cls(message, [], True)
        for raw, command in parsed:
            if isinstance(command, MessageError):
                correlation_id = raw.get("correlation_id") if isinstance(raw, dict) else None
                problem = Problem(400, "validation_error", f"Bad booking command: {command}")
                unit.refused.append((correlation_id, 400, problem.to_dict()))
                unit.malformed.append((raw, str(command)))
            else:
                unit.commands.append(command)
        return unit


async def refuse_undecodable(
    channel: AbstractChannel, dead_exchange: AbstractExchange, message: Message, exc: Exception
) -> None:
    """Answer 400 to a message no command could be read from, and park it. An unsigned
    one is parked unanswered: its reply_to is not the front door's to be trusted either."""
    if isinstance(exc, UnsignedMessage):
        await dead_letter_message(dead_exchange, message, str(exc), "unsigned")
        return
    problem = Problem(400, "validation_error", f"Bad booking command: {exc}")
    await reply(channel, message, [(message.correlation_id, 400, problem.to_dict())])
    await dead_letter_message(dead_exchange, message, str(exc), "bad_message")


def observe(command: Command, outcome: Outcome, now: float) -> None:
    kind = command.kind
    code = (outcome.body or {}).get("code") if outcome.status >= 400 else None
    OUTCOMES.labels(kind, code or "ok").inc()
    if command.sent_at is not None:
        LATENCY.labels(kind).observe(max(0.0, now - command.sent_at))


async def reply(
    channel: AbstractChannel,
    message: Message,
    replies: list[tuple[Any, int, Any]],
    *,
    batched: bool = False,
) -> None:
    """Publish the answers to one message: one reply message for all of them. A batched
    reply names each command's correlation id, so it also serves to answer one command of
    a batch on its own."""
    if not message.reply_to or not replies:
        return
    answers = tuple(BookingReply(status, body, c) for c, status, body in replies)
    wire = BookingReplies(answers).to_wire() if batched else answers[0].to_wire()
    await channel.default_exchange.publish(
        aio_pika.Message(
            orjson.dumps(wire),
            correlation_id=message.correlation_id,
            content_type="application/json",
        ),
        routing_key=message.reply_to,
        mandatory=False,  # the front door may have gone; its wait has ended anyway
    )


async def dead_letter_command(
    exchange: AbstractExchange,
    message: Message,
    command: Any,
    reason: str,
    kind: str = "handler_error",
) -> None:
    """Park one command of a batch message, alone, as the single command it was (a
    malformed one as it came)."""
    wire = command.to_wire() if isinstance(command, Command) else command
    correlation_id = wire.get("correlation_id") if isinstance(wire, dict) else None
    await park(
        exchange,
        orjson.dumps(wire),
        reason,
        ERROR_HEADER,
        routing_key=message.routing_key or "",
        correlation_id=correlation_id if isinstance(correlation_id, str) else None,
    )
    DEAD_LETTERED.labels(kind).inc()
    log.warning("booking command dead-lettered kind=%s reason=%s", kind, reason)


async def dead_letter_message(
    exchange: AbstractExchange, message: Message, reason: str, kind: str
) -> None:
    await dead_letter(exchange, message, reason, ERROR_HEADER)
    DEAD_LETTERED.labels(kind).inc()
    log.warning("booking command dead-lettered kind=%s reason=%s", kind, reason)
