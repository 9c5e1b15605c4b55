"""Writing to the transactional outbox: call inside the transaction that made the change."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from ticketing.messages import EVENT_CHANGED, event_changed


async def record_event_changed(
    conn: asyncpg.Connection, event_ids: list[int] | int, reason: str
) -> None:
    """Announce that these events' views changed (created, edited, availability)."""
    ids = [event_ids] if isinstance(event_ids, int) else sorted(set(event_ids))
    await conn.executemany(
        "INSERT INTO outbox (topic, aggregate_id, payload) VALUES ($1, $2, $3::jsonb)",
        [(EVENT_CHANGED, str(i), json.dumps(event_changed(i, reason))) for i in ids],
    )


def payload_of(record: Any) -> dict[str, Any]:
    payload = record["payload"]
    decoded: dict[str, Any] = json.loads(payload) if isinstance(payload, str) else payload
    return decoded
