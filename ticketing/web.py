"""What every aiohttp service shares: middlewares, resources, health and metrics routes.

Services call :func:`create_base_app` and add their own routes and cleanup contexts, one
context per resource (open, check, yield, close), as in aiohttp-demos.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import uvloop
from aiohttp import web

from ticketing.api import Api, Ok, ProblemFields, Problems, Shape
from ticketing.auth import VERIFIER_KEY, TokenVerifier
from ticketing.config import Settings
from ticketing.health import EngineState as EngineState  # where its users import it from
from ticketing.metrics import SERVICE_KEY, metrics_middleware, metrics_view
from ticketing.problems import Problem, problem_middleware
from ticketing.ratelimit import (
    LIMITER_KEY,
    TRUSTED_PROXIES_KEY,
    RateLimiter,
    TrustedProxies,
    rate_limit_middleware,
)
from ticketing.redis_connect import RedisClient, connect_redis, probe_redis

log = logging.getLogger(__name__)

SETTINGS_KEY = web.AppKey("settings", Settings)
REDIS_KEY: web.AppKey[RedisClient] = web.AppKey("redis")
PG_POOL_KEY = web.AppKey("pg_pool", asyncpg.Pool)

DocumentBuilder = Callable[[], dict[str, Any]]
DOCUMENT_KEY: web.AppKey[DocumentBuilder] = web.AppKey("openapi_document")

# The routes every service serves: its health and its own OpenAPI document.
PLATFORM_API = Api()


# A check raises when its dependency is unreachable; it may return the engine's state.
HealthCheck = Callable[[web.Application], Awaitable[EngineState | None]]
HEALTH_CHECKS_KEY = web.AppKey("health_checks", dict[str, HealthCheck])
# Checks /healthz reports but does not answer 503 for: a dependency the service keeps
# serving without (the waiting room's queue pages while RabbitMQ is down, waitingroom.app).
ADVISORY_CHECKS_KEY = web.AppKey("advisory_checks", set[str])

# A dependency that does not answer within this long is reported down, so a health probe or
# a fan's request never hangs on it.
DEPENDENCY_TIMEOUT_SECONDS = 2.0


def create_base_app(settings: Settings, service: str) -> web.Application:
    app = web.Application(
        middlewares=[metrics_middleware, problem_middleware, rate_limit_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS_KEY] = settings
    app[SERVICE_KEY] = service
    app[TRUSTED_PROXIES_KEY] = TrustedProxies(settings.trusted_proxies)
    app.on_response_prepare.append(_nosniff)
    app[VERIFIER_KEY] = TokenVerifier(settings)
    app[HEALTH_CHECKS_KEY] = {}
    app[ADVISORY_CHECKS_KEY] = set()
    app.cleanup_ctx.append(redis_ctx)
    app.router.add_routes(PLATFORM_API.table)
    app.router.add_get("/metrics", metrics_view)
    return app


async def _nosniff(request: web.Request, response: web.StreamResponse) -> None:
    # Every answer, errors and the queue page included, is read as the type it declares: a
    # browser never guesses a script or a page out of a JSON or text body.
    response.headers["X-Content-Type-Options"] = "nosniff"


def create_pg_pool(settings: Settings, **kwargs: Any) -> Awaitable[asyncpg.Pool]:
    # min_size=0: the service starts, and keeps answering from caches, while Postgres is down.
    return asyncpg.create_pool(
        settings.database_url,
        min_size=0,
        max_size=settings.db_pool_max,
        timeout=DEPENDENCY_TIMEOUT_SECONDS,
        command_timeout=10,
        **kwargs,
    )


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    redis = connect_redis(settings.redis_url, timeout=DEPENDENCY_TIMEOUT_SECONDS)
    app[REDIS_KEY] = redis
    app[LIMITER_KEY] = RateLimiter(
        redis, settings.redis_prefix, settings.rate_limit_per_minute, settings.rate_limit_burst
    )
    app[HEALTH_CHECKS_KEY]["redis"] = _check_redis
    yield
    await redis.aclose()


async def pg_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = await create_pg_pool(app[SETTINGS_KEY])
    app[PG_POOL_KEY] = pool
    app[HEALTH_CHECKS_KEY]["postgres"] = _check_postgres
    yield
    await pool.close()


async def _check_redis(app: web.Application) -> EngineState:
    return await probe_redis(app[REDIS_KEY])


async def _check_postgres(app: web.Application) -> EngineState:
    """The primary alone (mode ``primary``): catalog_api's check adds its replicas."""
    async with app[PG_POOL_KEY].acquire() as conn:
        await conn.fetchval("SELECT 1")
    return EngineState("primary", nodes=1, healthy=1)


Component = str | dict[str, Any]


async def run_checks(
    app: web.Application, checks: Mapping[str, HealthCheck]
) -> dict[str, Component]:
    async def one(check: HealthCheck) -> Component:
        try:
            state = await asyncio.wait_for(check(app), DEPENDENCY_TIMEOUT_SECONDS)
        except Exception as exc:  # any failure means "not reachable" to the prober
            return f"down: {type(exc).__name__}"
        return "ok" if state is None else state.component()

    names = list(checks)
    results = await asyncio.gather(*(one(checks[n]) for n in names))
    return dict(zip(names, results, strict=True))


def is_up(component: Component) -> bool:
    status = component if isinstance(component, str) else component["status"]
    return bool(status == "ok")


class EngineHealth(Shape):
    """A dependency that says how it runs: ``mode`` (``single`` or ``cluster``), the
    ``nodes`` configured and how many are ``healthy`` (down when none is)."""

    status: str
    mode: str
    nodes: int
    healthy: int


class Health(Shape):
    """Every dependency the service needs answered: ``ok``, or its engine's state. One it
    serves without (the waiting room's RabbitMQ: its queue pages) may read down."""

    status: str
    components: dict[str, str | EngineHealth]


class HealthDown(ProblemFields):
    """Which dependency is down, and the state of every one."""

    components: dict[str, str | EngineHealth]


@PLATFORM_API.get(
    "/healthz",
    summary="Health of the service and the dependencies it checks",
    replies=[
        Ok(200, "Every dependency is reachable", shape=Health),
        Problems(
            503,
            "components names each dependency's state",
            codes=("backend_unavailable",),
            extra=HealthDown,
        ),
    ],
)
async def healthz(request: web.Request) -> web.Response:
    checks = request.app[HEALTH_CHECKS_KEY]
    components = await run_checks(request.app, checks)
    advisory = request.app[ADVISORY_CHECKS_KEY]
    down = sorted(n for n, state in components.items() if not is_up(state) and n not in advisory)
    if down:
        raise Problem(
            503, "backend_unavailable", "Unreachable: " + ", ".join(down), components=components
        )
    return web.json_response({"status": "ok", "components": components})


def serve_document(app: web.Application, build: DocumentBuilder) -> None:
    """Serve ``build()``, the service's own OpenAPI document, at ``/openapi.json``; built
    on the first request, not at every start."""
    cached: DocumentBuilder = functools.cache(build)
    app[DOCUMENT_KEY] = cached


@PLATFORM_API.get(
    "/openapi.json",
    summary="This OpenAPI 3.1 document",
    replies=[Ok(200, "The document")],
)
async def openapi_json(request: web.Request) -> web.Response:
    build = request.app.get(DOCUMENT_KEY)
    if build is None:
        raise web.HTTPNotFound()
    return web.json_response(build())


def use_uvloop() -> None:
    """Run the process's event loop on libuv: about a third less CPU per request for
    aiohttp, aio-pika and asyncpg alike. Call before the loop is created."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_app(app: web.Application, settings: Settings, port: int) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    use_uvloop()
    web.run_app(app, host=settings.host, port=port, access_log=None, print=None)
