"""The two HTML pages the waitingroom serves and their assets: the fans' queue page
(``GET /queue/{event_id}``) and the operators' console (``GET /admin``).

Plain HTML, CSS and JavaScript from ``waitingroom/static``: no build step, nothing from a
CDN. The pages load without a token; the API calls their scripts make carry the fan's or
the operator's JWT. Files are read once, on the first request, and served from memory, so
a page costs no disk read and a surge of fans reloading it costs next to nothing.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ticketing.api import Api, Empty, Html, Operation, Problems, Raw
from ticketing.api.common import RATE_LIMITED
from ticketing.problems import Problem
from ticketing.validation import MAX_ID
from waitingroom.queue.route_steps import EVENT_ID, serve
from waitingroom.queue.shapes import QueuePageQuery

# The service's assets stay at waitingroom/static (the package data pyproject ships).
STATIC_DIR = Path(__file__).parent.parent / "static"
_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}
# The scripts are files of our own origin, the API is this origin and its websocket:
# nothing inline, nothing from elsewhere, no framing.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# What every answer of these routes carries (_respond), as the document shows it.
_HEADERS = (
    ("ETag", "The file's version: send it back as If-None-Match."),
    ("Cache-Control", "no-cache: revalidate every time."),
    ("Content-Security-Policy", "Scripts, styles and connections of this origin only."),
)
UNCHANGED = Empty(304, "Unchanged since the ETag sent in If-None-Match", headers=_HEADERS)

PAGES_API = Api()


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets(directory: Path = STATIC_DIR) -> dict[str, Asset]:
    assets = {}
    for path in sorted(directory.iterdir()):
        content_type = _TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        assets[path.name] = Asset(body, content_type, etag)
    return assets


def _respond(request: web.Request, asset: Asset) -> web.Response:
    # no-cache: the browser revalidates every time (a 304 costs a few bytes), so a fix to
    # a page reaches fans on their next load instead of after a cache lifetime.
    headers = {**_SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=asset.body, content_type=asset.content_type, charset="utf-8", headers=headers
    )


@functools.cache
def assets() -> dict[str, Asset]:
    return load_assets()


async def queue_page(request: web.Request) -> web.Response:
    raw = request.match_info["event_id"]
    # A malformed id is the route's 404, as for every other route with an event id; an
    # unknown but well-formed one is told by the page (the catalog answers 404).
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not 1 <= int(raw) <= MAX_ID:
        raise Problem(404, "event_not_found", "No such event.")
    return _respond(request, assets()["queue.html"])


# Served as it is: its one query parameter is the page's script's, not the server's.
serve(
    PAGES_API,
    queue_page,
    Operation(
        "GET",
        "/queue/{event_id}",
        summary="The fans' queue page (HTML, no token needed to load it)",
        description="Position, people ahead, estimated wait and progress, live over the "
        "websocket; then seat selection and a test-mode checkout once admitted. ?user= picks "
        "the development user whose token it uses.",
        query=QueuePageQuery,
        path_ids=(EVENT_ID,),
        replies=(
            Html(200, "The page", headers=_HEADERS),
            UNCHANGED,
            Problems(404, "a malformed event id", codes=("event_not_found",)),
            RATE_LIMITED,
        ),
    ),
)


@PAGES_API.get(
    "/admin",
    summary="The operators' console (HTML, no token needed to load it; its calls need the "
    "admin role)",
    description="Live queue length, active sessions, admission rate and inventory per event, "
    "and the queue controls.",
    replies=[Html(200, "The page", headers=_HEADERS), UNCHANGED, RATE_LIMITED],
)
async def admin_page(request: web.Request) -> web.Response:
    return _respond(request, assets()["admin.html"])


@PAGES_API.get(
    "/static/{name}",
    summary="The pages' scripts and style sheet",
    replies=[
        Raw(
            200,
            "The file",
            headers=_HEADERS,
            media_types=tuple(sorted({t for t in _TYPES.values() if t != "text/html"})),
        ),
        UNCHANGED,
        Problems(
            404, "no such file (the pages themselves are not served here)", codes=("not_found",)
        ),
        RATE_LIMITED,
    ],
    extra={
        "parameters": [
            {
                "name": "name",
                "in": "path",
                "required": True,
                "description": "A file of waitingroom/static, such as queue.js.",
                "schema": {"type": "string"},
            }
        ]
    },
)
async def static_file(request: web.Request) -> web.Response:
    asset = assets().get(request.match_info["name"])
    if asset is None or asset.content_type == "text/html":
        raise Problem(404, "not_found", "No such file.")
    return _respond(request, asset)
