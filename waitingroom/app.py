"""The waitingroom service's application."""

from __future__ import annotations

from aiohttp import web

from ticketing.auth import dev_token_routes
from ticketing.config import Settings
from ticketing.web import create_base_app


def create_app(settings: Settings) -> web.Application:
    app = create_base_app(settings, "waitingroom")
    app.router.add_routes(dev_token_routes(settings))
    return app
