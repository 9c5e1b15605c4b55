"""The two HTML pages the waitingroom serves and their assets: the fans' queue page
(``GET /queue/{event_id}``) and the operators' console (``GET /admin``).

Plain HTML, CSS and JavaScript from ``waitingroom/static``: no build step, nothing from a
CDN. The pages load without a token; the API calls their scripts make carry the fan's or
the operator's JWT. Files are read once at start-up and served from memory, so a page
costs no disk read and a surge of fans reloading it costs next to nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ticketing.problems import Problem
from ticketing.validation import MAX_ID

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


def page_routes(assets: dict[str, Asset] | None = None) -> list[web.RouteDef]:
    files = load_assets() if assets is None else assets

    async def queue_page(request: web.Request) -> web.Response:
        raw = request.match_info["event_id"]
        # A malformed id is the route's 404, as for every other route with an event id;
        # an unknown but well-formed one is told by the page (the catalog answers 404).
        if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not 1 <= int(raw) <= MAX_ID:
            raise Problem(404, "event_not_found", "No such event.")
        return _respond(request, files["queue.html"])

    async def admin_page(request: web.Request) -> web.Response:
        return _respond(request, files["admin.html"])

    async def static_file(request: web.Request) -> web.Response:
        asset = files.get(request.match_info["name"])
        if asset is None or asset.content_type == "text/html":
            raise Problem(404, "not_found", "No such file.")
        return _respond(request, asset)

    return [
        web.get("/queue/{event_id}", queue_page),
        web.get("/admin", admin_page),
        web.get("/static/{name}", static_file),
    ]
