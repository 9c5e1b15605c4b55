"""Prometheus metrics common to every service.

Each process has its own registry-backed counters; every HTTP service serves them on its own
``/metrics`` (not routed by the gateway), and search_sync on its metrics port.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "ticketing_http_requests_total",
    "HTTP requests answered, by route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "ticketing_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DEPENDENCY_ERRORS = Counter(
    "ticketing_dependency_errors_total",
    "Failed calls to a dependency (postgres, redis, rabbitmq, typesense).",
    ["service", "dependency"],
)
DEGRADED_RESPONSES = Counter(
    "ticketing_degraded_responses_total",
    "Answers served from a fallback because a dependency was down.",
    ["service", "route", "fallback"],
)

SERVICE_KEY = web.AppKey("service_name", str)


# Any token is a method to aiohttp: one a client makes up is "other", or each would be a
# label set of its own, kept for the life of the process.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(request: web.Request) -> str:
    method = request.method
    return method if method in KNOWN_METHODS else "other"


def route_label(request: web.Request) -> str:
    # The template, not the path, so ids do not explode the label set.
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        key = (request.app[SERVICE_KEY], method_label(request), route_label(request))
        # labels() validates and locks on every call: a tenth of a cheap route's CPU.
        latency = _LATENCY_CHILDREN.get(key)
        if latency is None:
            latency = _LATENCY_CHILDREN[key] = HTTP_LATENCY.labels(*key)
        latency.observe(time.perf_counter() - started)
        counted = _REQUEST_CHILDREN.get((key, status))
        if counted is None:
            counted = _REQUEST_CHILDREN[(key, status)] = HTTP_REQUESTS.labels(*key, str(status))
        counted.inc()


# Label children by label values; bounded by routes x methods x statuses.
_LATENCY_CHILDREN: dict[tuple[str, str, str], Any] = {}
_REQUEST_CHILDREN: dict[tuple[tuple[str, str, str], int], Any] = {}


async def metrics_view(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
