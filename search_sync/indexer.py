"""Writing current event views into a Typesense collection (or the alias in front of one).

Both the live consumer and the reindex go through here, so a document always comes from
:func:`ticketing.db.events.fetch_event_views` and never from a message's contents.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import typesense
from typesense.exceptions import ObjectNotFound

from ticketing.config import Settings
from ticketing.db.events import fetch_event_views
from ticketing.dependencies import POSTGRES_ERRORS, TYPESENSE_ERRORS, DependencyDown
from ticketing.search_index import make_client, to_document

log = logging.getLogger(__name__)

# Bulk imports of a thousand documents can take longer than a search is allowed to.
INDEXING_TIMEOUT_SECONDS = 30.0


@dataclass
class SyncOutcome:
    upserted: int = 0
    deleted: int = 0
    # Event id -> Typesense's reason for refusing its document (retrying will not help).
    rejected: dict[int, str] = field(default_factory=dict)


def indexing_client(settings: Settings) -> typesense.AsyncClient:
    timeout = max(settings.typesense_timeout_seconds, INDEXING_TIMEOUT_SECONDS)
    return make_client(dataclasses.replace(settings, typesense_timeout_seconds=timeout))


async def import_documents(
    client: typesense.AsyncClient, collection: str, documents: Sequence[dict[str, Any]]
) -> dict[int, str]:
    """Upsert documents; returns the ones Typesense refused, by event id, with the reason."""
    if not documents:
        return {}
    try:
        results = await client.collections[collection].documents.import_(
            list(documents), {"action": "upsert"}
        )
    except TYPESENSE_ERRORS as exc:
        raise DependencyDown("typesense", exc) from exc
    return {
        int(doc["id"]): str(result.get("error", "rejected"))
        for doc, result in zip(documents, results, strict=True)
        if not result.get("success")
    }


async def delete_documents(
    client: typesense.AsyncClient, collection: str, event_ids: Sequence[int]
) -> None:
    for event_id in event_ids:
        try:
            await client.collections[collection].documents[str(event_id)].delete()
        except ObjectNotFound:
            pass  # already gone: deleting is idempotent
        except TYPESENSE_ERRORS as exc:
            raise DependencyDown("typesense", exc) from exc


async def sync_events(
    pool: asyncpg.Pool,
    client: typesense.AsyncClient,
    collection: str,
    event_ids: Sequence[int],
) -> SyncOutcome:
    """Make the collection's documents of these events match Postgres as it is now."""
    try:
        views = await fetch_event_views(pool, event_ids)
    except POSTGRES_ERRORS as exc:
        raise DependencyDown("postgres", exc) from exc
    documents = [to_document(views[i]) for i in event_ids if i in views]
    missing = [i for i in event_ids if i not in views]
    rejected = await import_documents(client, collection, documents)
    await delete_documents(client, collection, missing)
    for event_id, reason in rejected.items():
        log.error("typesense refused document event_id=%s: %s", event_id, reason)
    return SyncOutcome(len(documents) - len(rejected), len(missing), rejected)
