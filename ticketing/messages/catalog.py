"""``catalog.event.changed``: "the view of this event changed; re-read it from the source of
truth" (outbox -> search_sync)."""

from __future__ import annotations

from typing import Any

from ticketing.messages.errors import MessageError

CATALOG_EXCHANGE = "ticketing.catalog"

EVENT_CHANGED = "catalog.event.changed"
EVENT_CHANGED_VERSION = 1

EVENT_CHANGE_REASONS = frozenset({"created", "edited", "availability", "reindex"})


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
