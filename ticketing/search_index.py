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


def make_client(settings: Settings) -> typesense.AsyncClient:
    parts = urlsplit(settings.typesense_url)
    return typesense.AsyncClient(
        {
            "nodes": [
                {
                    "host": parts.hostname or "127.0.0.1",
                    "port": parts.port or (443 if parts.scheme == "https" else 80),
                    "protocol": parts.scheme or "http",
                }
            ],
            "api_key": settings.typesense_api_key,
            "connection_timeout_seconds": settings.typesense_timeout_seconds,
            # Fail fast: when Typesense is down, search falls back to Postgres at once.
            "num_retries": 0,
            "retry_interval_seconds": 0.05,
        }
    )
