"""The waitingroom service's application: dev tokens, the waiting room and the booking
front door; or (role ``booking``) the booking front door alone.

The one place that puts the two rooms together: :mod:`waitingroom.queue` and
:mod:`waitingroom.booking`, which reaches the queue only through its port."""

from __future__ import annotations

import functools

from aiohttp import web

from ticketing.config import Settings
from ticketing.dev_token import DEV_TOKEN_API
from ticketing.jwks import JWKS_API
from ticketing.ratelimit import OWN_LIMITS_KEY, SIGNED_ROUTES_KEY
from ticketing.web import ADVISORY_CHECKS_KEY, create_base_app, pg_pool_ctx, serve_document
from waitingroom.booking.commands import rpc_ctx
from waitingroom.booking.contract import BOOKING_APIS
from waitingroom.booking.stripe_webhook import stripe_signed
from waitingroom.openapi import build_document
from waitingroom.queue.contract import QUEUE_APIS
from waitingroom.queue.loops import queue_ctx
from waitingroom.queue.runtime import ROLE_KEY


def create_app(settings: Settings, role: str = "all") -> web.Application:
    """``role`` ``all``: every route; ``booking``: the booking front door only. A front
    door still reads and changes the queue's state (admission sessions, claims, the
    recount after a sale) but runs none of its loops (admitter, pushes, counting), so a
    reserve or a confirm never waits behind a push round over thousands of sockets."""
    app = create_base_app(settings, "waitingroom")
    app[ROLE_KEY] = role
    app.cleanup_ctx.append(rpc_ctx)  # /healthz's "rabbitmq": its connection, the nodes
    if role != "booking":
        # A 503 from /healthz says "this process cannot serve": compose's healthcheck waits
        # on it before starting nginx, monitors read it (Kubernetes probes /metrics: an
        # outage every pod sees at once would empty the Service). A front door without
        # RabbitMQ can only answer 503, so it says so. A queue process keeps serving
        # without it (pages, joins, websockets, places kept): it reports RabbitMQ down but
        # answers 200, as before RabbitMQ had an entry, or a booking outage would read as
        # the queue's.
        app[ADVISORY_CHECKS_KEY].add("rabbitmq")
    # The queue reads PostgreSQL for inventory (one grouped count a second, shared through
    # Redis) and for new events' on-sale time; it starts after Redis and this pool.
    app.cleanup_ctx.append(pg_pool_ctx)
    app.cleanup_ctx.append(queue_ctx)
    serve_document(app, functools.partial(build_document, role))
    # Stripe delivers from a few addresses in bursts: its signed deliveries skip the
    # per-address limit, anything unsigned still counts against it.
    app[SIGNED_ROUTES_KEY] = {"/webhooks/stripe": stripe_signed}
    for api in BOOKING_APIS:
        app.router.add_routes(api.table)
    if role == "booking":
        return app
    app.router.add_routes(JWKS_API.table)
    if settings.is_dev:
        app.router.add_routes(DEV_TOKEN_API.table)
    for api in QUEUE_APIS:
        app.router.add_routes(api.table)
    # Join, status, the websocket and its ticket check the queue's per-fan and per-address
    # limits (in the PLACE script, see waitingroom.queue.route_steps.arrive), stricter than
    # the generic per-client one.
    app[OWN_LIMITS_KEY] = frozenset(
        {
            "/queue/{event_id}/join",
            "/queue/{event_id}/status",
            "/queue/{event_id}/ws-ticket",
            "/queue/{event_id}/ws",
        }
    )
    return app
