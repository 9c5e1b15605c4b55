"""catalog_api's own OpenAPI document: the routes it declares (read path, search, admin
catalog writes) and the platform's two (health, this document). The gateway serves it
merged with the waitingroom's (deploy/openapi.py)."""

from __future__ import annotations

from typing import Any

from catalog_api.admin_routes import ADMIN_API
from catalog_api.event_routes import EVENTS_API
from catalog_api.search_routes import SEARCH_API
from ticketing.api import Api, document
from ticketing.web import PLATFORM_API

TITLE = "Ticketing catalog"
DESCRIPTION = (
    "Browse, view and search events (served from cache or the search index while Postgres "
    "is down); admin catalog writes: venues, performers, events."
)

# The routes catalog_api serves beside the platform's, in the order it registers them.
CATALOG_APIS: tuple[Api, ...] = (EVENTS_API, SEARCH_API, ADMIN_API)


def build_document() -> dict[str, Any]:
    return document(TITLE, DESCRIPTION, [PLATFORM_API, *CATALOG_APIS])
