"""The Typesense side of the event read model: collection schema and documents.

search_sync writes documents built here and catalog_api reads them back into views, so a
search hit (or a view served while Postgres is down) has exactly the API's shape.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import typesense
from typesense.configuration import NodeConfigDict

from ticketing.config import Settings


def collection_schema(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "performer_name", "type": "string"},
            {"name": "venue_name", "type": "string"},
            {"name": "city", "type": "string", "facet": True},
            {"name": "date", "type": "int64"},
            {"name": "location", "type": "geopoint"},
            {"name": "performer_id", "type": "int64"},
            {"name": "venue_id", "type": "int64"},
            {"name": "available_tickets", "type": "int32"},
            {"name": "min_price_cents", "type": "int32"},
            {"name": "queue_enabled", "type": "bool"},
            # The full view, returned as-is; not searchable.
            {"name": "view", "type": "string", "index": False, "optional": True},
        ],
        "default_sorting_field": "date",
    }


def to_document(view: dict[str, Any]) -> dict[str, Any]:
    venue = view["venue"]
    return {
        "id": str(view["id"]),
        "name": view["name"],
        "performer_name": view["performer"]["name"],
        "venue_name": venue["name"],
        "city": venue["city"],
        "date": int(datetime.fromisoformat(view["date"].replace("Z", "+00:00")).timestamp()),
        "location": [venue["location"]["lat"], venue["location"]["lon"]],
        "performer_id": view["performer"]["id"],
        "venue_id": venue["id"],
        "available_tickets": view["available_tickets"],
        "min_price_cents": view["min_price_cents"],
        "queue_enabled": view["queue_enabled"],
        "view": json.dumps(view, separators=(",", ":")),
    }


def view_of(document: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = json.loads(document["view"])
    return view


# How long the client skips a node that failed (the client's clock counts whole seconds).
NODE_COOLDOWN_SECONDS = 2


def make_client(settings: Settings) -> typesense.AsyncClient:
    """A client of every configured node. On a cluster any node takes a write (a follower
    forwards it to the leader), so a write a node fails is sent to the next one at once,
    each node at most once; a node that failed is skipped for a few seconds. While the
    cluster has no leader (an election, a few seconds) every node fails the write, and the
    caller retries later (search_sync requeues the batch after a backoff)."""
    nodes: list[str | NodeConfigDict] = [_node(url) for url in settings.typesense_nodes]
    return typesense.AsyncClient(
        {
            "nodes": nodes,
            "api_key": settings.typesense_api_key,
            "connection_timeout_seconds": settings.typesense_timeout_seconds,
            # Fail fast: a single node that is down is retried by the caller after a backoff.
            "num_retries": len(nodes) - 1,
            "retry_interval_seconds": 0.05,
            "healthcheck_interval_seconds": NODE_COOLDOWN_SECONDS,
        }
    )


def _node(url: str) -> NodeConfigDict:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or (443 if parts.scheme == "https" else 80),
        "protocol": parts.scheme or "http",
    }
