"""``GET /queue/{event_id}/fairness``: the public record of the fair start, read from
PostgreSQL (it outlives the queue in Redis), with the drawn order a page at a time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web

from ticketing.api import Api, Ok, Problems
from ticketing.api.common import BAD_REQUEST, RATE_LIMITED, RETRY_AFTER
from ticketing.auth import Principal, optional_principal
from ticketing.dependencies import POSTGRES_ERRORS
from ticketing.domain.queue import member_key, member_ref
from ticketing.problems import Problem, unavailable_on
from ticketing.validation import rfc3339
from waitingroom.queue.draw_record import DrawRecord, FairnessRecord
from waitingroom.queue.fairness_shapes import QueueFairness, QueueFairnessQuery
from waitingroom.queue.route_steps import (
    EVENT_ID,
    EVENT_NOT_FOUND,
    event_id_of,
    event_or_404,
    queue_reachable,
)
from waitingroom.queue.runtime import QUEUE_KEY

FAIRNESS_API = Api()
COMMIT_WAIT_SECONDS = 1.0

ALGORITHM = (
    "commitment = SHA-256(seed bytes); member = HMAC-SHA256(key=the event's member key, "
    "kept secret, message='<event_id>:<user_id>') hex (a signed-in fan is told their own); "
    "order = members sorted by HMAC-SHA256(key=seed bytes, message=member hex) hex, "
    "ascending (ties by member); order_sha256 = SHA-256 of the whole order's members "
    "joined by '\\n' (UTF-8, no trailing newline)"
)
DESCRIPTION = (
    "The seed's SHA-256 commitment before on-sale; after it the seed and the drawn order a "
    "page at a time, with order_sha256 over the whole order, so anyone can "
    "fetch every page and recompute the draw. A draw once recorded is final: if Redis "
    "loses the queue after it, the fans are put back in the recorded order, never drawn "
    "again. If Redis loses the secret seed before on-sale, the room commits to a new one "
    "(epoch + 1) and the lost commitment is listed in superseded. With a bearer token, "
    "also the caller's member id and drawn position."
)


def record_reachable() -> contextlib.AbstractContextManager[None]:
    return unavailable_on(POSTGRES_ERRORS, "The fairness record is not reachable; retry shortly.")


@FAIRNESS_API.get(
    "/queue/{event_id}/fairness",
    summary="The public record of the pre-queue draw, kept in PostgreSQL (it outlives the "
    "queue in Redis)",
    description=DESCRIPTION,
    query=QueueFairnessQuery,
    path_ids=[EVENT_ID],
    replies=[
        Ok(200, "The draw's record", shape=QueueFairness),
        BAD_REQUEST,
        EVENT_NOT_FOUND,
        RATE_LIMITED,
        Problems(
            503,
            "the record (PostgreSQL), or before on-sale the queue (Redis), is not reachable; "
            "retry after Retry-After",
            codes=("backend_unavailable",),
            headers=RETRY_AFTER,
        ),
    ],
)
async def fairness(request: web.Request, query: QueueFairnessQuery) -> web.Response:
    """Public: the commitment before on-sale; after it the seed and the order (paged by
    ``offset`` and ``limit``) with its digest, so anyone can fetch every page and check
    ``order == sorted(members, key=HMAC-SHA256(seed, member))``."""
    event_id = event_id_of(request)
    offset, limit = query.offset, query.limit
    runtime = request.app[QUEUE_KEY]
    event = await event_or_404(runtime, event_id)
    record_of = runtime.admitter.fair_start.record
    with record_reachable():
        record = await record_of.get(event_id)
        if record is None and time.time() * 1000 < event.on_sale_ms:
            with queue_reachable():
                await runtime.admitter.commit(event_id)
            # Not recorded by this call when the admitter (here or in another process)
            # was recording it at that moment: it is, in a few milliseconds.
            deadline = time.monotonic() + COMMIT_WAIT_SECONDS
            while (record := await record_of.get(event_id)) is None:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
        body: dict[str, Any] = {
            "event_id": event_id,
            "on_sale_at": event.on_sale_text,
            "algorithm": ALGORITHM,
            **await _commitments(record_of, record),
            **await _draw(record_of, record, offset, limit),
        }
        principal = _principal_or_none(request)
        if principal is not None:
            key = member_key(runtime.settings.queue_ticket_secret, event_id)
            ref = member_ref(key, event_id, principal.user_id)
            drawn = None
            if record is not None and record.drawn:
                drawn = (await record_of.positions(event_id, [ref])).get(ref)
            body["you"] = {"member": ref, "drawn_position": drawn}
    return web.json_response(body)


async def _commitments(record_of: FairnessRecord, record: DrawRecord | None) -> dict[str, Any]:
    if record is None:
        return {
            "state": "none",
            "epoch": None,
            "commitment": None,
            "committed_at": None,
            "superseded": [],
        }
    superseded = await record_of.superseded(record.event_id) if record.epoch > 1 else []
    return {
        "state": "drawn" if record.drawn else "committed",
        "epoch": record.epoch,
        "commitment": record.commitment,
        "committed_at": rfc3339(record.committed_at),
        "superseded": [
            {
                "epoch": row["epoch"],
                "commitment": row["commitment"],
                "committed_at": rfc3339(row["committed_at"]),
                "superseded_at": rfc3339(row["superseded_at"]),
            }
            for row in superseded
        ],
    }


async def _draw(
    record_of: FairnessRecord, record: DrawRecord | None, offset: int, limit: int
) -> dict[str, Any]:
    if record is None or not record.drawn:
        return {
            "seed": None,
            "revealed_at": None,
            "total": None,
            "order_sha256": None,
            "offset": offset,
            "limit": limit,
            "order": None,
            "members": None,
            "next": None,
            "verified": None,
        }
    if record.revealed_at is None or record.total is None:
        raise RuntimeError(f"event {record.event_id}: a drawn record without its reveal")
    event_id = record.event_id
    following = offset + limit
    return {
        "seed": record.seed,
        "revealed_at": rfc3339(record.revealed_at),
        "total": record.total,
        "order_sha256": record.order_sha256,
        "offset": offset,
        "limit": limit,
        "order": await record_of.order_page(event_id, offset, limit),
        "members": await record_of.members_page(event_id, offset, limit),
        "next": (
            f"/queue/{event_id}/fairness?offset={following}&limit={limit}"
            if following < record.total
            else None
        ),
        "verified": await record_of.verified(record),
    }


def _principal_or_none(request: web.Request) -> Principal | None:
    try:
        return optional_principal(request)
    except Problem:
        return None
