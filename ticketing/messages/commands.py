"""Booking commands (front door -> booking worker) as typed, versioned messages.

One frozen class per command kind. :func:`parse_command` turns the wire dict into the typed
command (MessageError when a field has the wrong JSON type); ``to_wire()`` gives the wire
dict back, key for key as the front door has always sent it, so old and new processes can
run side by side during a deploy. Rules on values (an id in range, a quantity of at least
one, a hold id that is a UUID) are the worker's to apply: it answers them with the same
problems as before, stored for the command's idempotency key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ticketing.messages.errors import MessageError

BOOKING_COMMAND_VERSION = 1
_NUMBER = (int, float)  # built once: every command of an on-sale is parsed

RESERVE = "booking.reserve"
CONFIRM = "booking.confirm"
RELEASE = "booking.release"
TICKET_STATUS = "booking.ticket_status"
GET_BOOKING = "booking.get"
LIST_BOOKINGS = "booking.list"
STRIPE_EVENT = "booking.stripe_event"


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """The envelope every command carries. ``request_id`` is the idempotency key: a worker
    that already applied it answers with the stored reply instead of acting again."""

    KIND: ClassVar[str] = ""
    request_id: str
    user_id: str
    roles: tuple[str, ...] = ()
    # Added by the front door's RPC client when it sends: epoch seconds (latency metrics)
    # and the id its caller waits on.
    sent_at: float | None = None
    correlation_id: str | None = None

    @property
    def kind(self) -> str:
        return self.KIND

    @property
    def is_admin(self) -> bool:
        """An admin may act on any fan's hold or booking."""
        return "admin" in self.roles

    def fields(self) -> dict[str, Any]:
        """The kind's own fields, in wire order."""
        return {}

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "type": self.KIND,
            "v": BOOKING_COMMAND_VERSION,
            "request_id": self.request_id,
            "user_id": self.user_id,
            "roles": list(self.roles),
            **self.fields(),
        }
        if self.sent_at is not None:
            wire["sent_at"] = self.sent_at
        if self.correlation_id is not None:
            wire["correlation_id"] = self.correlation_id
        return wire

    @classmethod
    def parse_fields(cls, body: Mapping[str, Any]) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Reserve(Command):
    """Seats for a fan: ``ticket_ids``, or ``quantity`` best available (in ``section``).
    ``replay_only``: answer the stored reply of ``request_id``, or refuse without acting."""

    KIND: ClassVar[str] = RESERVE
    event_id: int
    ticket_ids: tuple[int, ...] | None = None
    quantity: int | None = None
    section: str | None = None
    admitted: bool | None = None
    replay_only: bool = False

    def fields(self) -> dict[str, Any]:
        wire: dict[str, Any] = {}
        if self.admitted is not None:
            wire["admitted"] = self.admitted
        if self.replay_only:
            wire["replay_only"] = True
        wire["event_id"] = self.event_id
        if self.ticket_ids is not None:
            wire["ticket_ids"] = list(self.ticket_ids)
        if self.quantity is not None:
            wire["quantity"] = self.quantity
        if self.section is not None:
            wire["section"] = self.section
        return wire

    @classmethod
    def parse_fields(cls, body: Mapping[str, Any]) -> dict[str, Any]:
        ids = _optional(body, "ticket_ids", list)
        if ids is not None and not all(_is_int(i) for i in ids):
            raise MessageError("ticket_ids must be a list of integers")
        return {
            "event_id": _required_int(body, "event_id"),
            "ticket_ids": None if ids is None else tuple(ids),
            "quantity": _optional_int(body, "quantity"),
            "section": _optional(body, "section", str),
            "admitted": _optional(body, "admitted", bool),
            "replay_only": _optional(body, "replay_only", bool) is True,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirm(Command):
    """Pay for a hold with a Stripe payment method."""

    KIND: ClassVar[str] = CONFIRM
    hold_id: str
    payment_method: str = ""

    def fields(self) -> dict[str, Any]:
        return {"hold_id": self.hold_id, "payment_method": self.payment_method}

    @classmethod
    def parse_fields(cls, body: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "hold_id": _optional(body, "hold_id", str) or "",
            "payment_method": _optional(body, "payment_method", str) or "",
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Release(Command):
    KIND: ClassVar[str] = RELEASE
    hold_id: str

    def fields(self) -> dict[str, Any]:
        return {"hold_id": self.hold_id}

    @classmethod
    def parse_fields(cls, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"hold_id": _optional(body, "hold_id", str) or ""}


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketStatus(Command):
    KIND: ClassVar[str] = TICKET_STATUS
    ticket_id: int

    def fields(self) -> dict[str, Any]:
        return {"ticket_id": self.ticket_id}

    @classmethod
    def parse_fields(cls, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"ticket_id": _required_int(body, "ticket_id")}


@dataclass(frozen=True, slots=True, kw_only=True)
class GetBooking(Command):
    KIND: ClassVar[str] = GET_BOOKING
    booking_id: str

    def fields(self) -> dict[str, Any]:
        return {"booking_id": self.booking_id}

    @classmethod
    def parse_fields(cls, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"booking_id": _optional(body, "booking_id", str) or ""}


@dataclass(frozen=True, slots=True, kw_only=True)
class ListBookings(Command):
    """The caller's bookings, newest first; ``cursor`` is (created_at, id) of the last one
    seen (always on the wire, null for the first page)."""

    KIND: ClassVar[str] = LIST_BOOKINGS
    limit: int = 20
    cursor: tuple[str, ...] | None = None

    def fields(self) -> dict[str, Any]:
        return {"limit": self.limit, "cursor": None if self.cursor is None else list(self.cursor)}

    @classmethod
    def parse_fields(cls, body: Mapping[str, Any]) -> dict[str, Any]:
        cursor = _optional(body, "cursor", list)
        if cursor is not None and not all(isinstance(part, str) for part in cursor):
            raise MessageError("cursor must be a list of strings")
        limit = _optional_int(body, "limit")
        return {"limit": 20 if limit is None else limit, "cursor": _tuple_or_none(cursor)}


@dataclass(frozen=True, slots=True, kw_only=True)
class StripeEvent(Command):
    """A Stripe webhook event the front door verified (its signature), to apply once."""

    KIND: ClassVar[str] = STRIPE_EVENT
    event: Mapping[str, Any]

    def fields(self) -> dict[str, Any]:
        return {"event": self.event}

    @classmethod
    def parse_fields(cls, body: Mapping[str, Any]) -> dict[str, Any]:
        event = _optional(body, "event", dict)
        if event is None or not isinstance(event.get("id"), str):
            raise MessageError("event must be a Stripe event with an id")
        return {"event": event}


COMMAND_TYPES: dict[str, type[Command]] = {
    cls.KIND: cls
    for cls in (Reserve, Confirm, Release, TicketStatus, GetBooking, ListBookings, StripeEvent)
}
BOOKING_COMMANDS = frozenset(COMMAND_TYPES)
PAYMENT_COMMANDS = frozenset({CONFIRM, STRIPE_EVENT})


def parse_command(body: Any) -> Command:
    """The typed command of a wire dict; MessageError when it is not one (unknown fields
    are ignored, as a newer sender's additions would be)."""
    if not isinstance(body, dict):
        raise MessageError("a booking command must be a JSON object")
    kind = body.get("type")
    cls = COMMAND_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MessageError(f"unknown booking command {kind!r}")
    if body.get("v") != BOOKING_COMMAND_VERSION:
        raise MessageError(f"unsupported version {body.get('v')!r} of {cls.KIND}")
    request_id = body.get("request_id")
    user_id = body.get("user_id")
    if not isinstance(request_id, str) or not request_id:
        raise MessageError("request_id must be a non-empty string")
    if not isinstance(user_id, str) or not user_id:
        raise MessageError("user_id must be a non-empty string")
    roles = body.get("roles") or ()
    if roles and (not isinstance(roles, list) or not all(isinstance(r, str) for r in roles)):
        raise MessageError("roles must be a list of strings")
    sent_at = body.get("sent_at")
    correlation_id = body.get("correlation_id")
    return cls(
        request_id=request_id,
        user_id=user_id,
        roles=tuple(roles),
        sent_at=sent_at if isinstance(sent_at, _NUMBER) else None,
        correlation_id=correlation_id if isinstance(correlation_id, str) else None,
        **cls.parse_fields(body),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional(body: Mapping[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise MessageError(f"{name} must be a {kind.__name__}")
    return value


def _optional_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and not _is_int(value):
        raise MessageError(f"{name} must be an integer")
    return value


def _required_int(body: Mapping[str, Any], name: str) -> int:
    value = _optional_int(body, name)
    if value is None:
        raise MessageError(f"{name} is required")
    return value


def _tuple_or_none(values: list[Any] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)
