"""The waitingroom service's application: dev tokens and the booking front door."""

from __future__ import annotations

from aiohttp import web

from ticketing.auth import dev_token_routes
from ticketing.config import Settings
from ticketing.web import create_base_app
from waitingroom.booking_routes import booking_routes, rpc_ctx
from waitingroom.confirm_routes import confirm_routes
from waitingroom.pages import page_routes
from waitingroom.stripe_webhook import stripe_webhook_routes


def create_app(settings: Settings) -> web.Application:
    app = create_base_app(settings, "waitingroom")
    app.cleanup_ctx.append(rpc_ctx)
    app.router.add_routes(dev_token_routes(settings))
    app.router.add_routes(booking_routes())
    app.router.add_routes(confirm_routes())
    app.router.add_routes(stripe_webhook_routes())
    app.router.add_routes(page_routes())
    return app
