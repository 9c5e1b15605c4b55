"""Per-client rate limiting in Redis, so the limit holds across every process.

A generic cell rate algorithm (GCRA) in one Lua script: one key per client holding its
"theoretical arrival time", so a check is a single atomic round trip and memory per client
is one small string that expires on its own.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address, ip_network

from aiohttp import web

from ticketing.auth import optional_principal
from ticketing.coalesce import Coalescer
from ticketing.config import default
from ticketing.dependencies import REDIS_ERRORS
from ticketing.metrics import DEPENDENCY_ERRORS, SERVICE_KEY
from ticketing.problems import Problem
from ticketing.redis_connect import RedisClient
from ticketing.redis_scripts import run_each

log = logging.getLogger(__name__)

_PIPELINE_MAX = 256  # checks in one round trip

# KEYS[1] client key; ARGV: emission interval (ms), burst tolerance (ms).
# Returns {allowed (0/1), retry_after_ms}.
_GCRA = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now_ms)
if tat < now_ms then tat = now_ms end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now_ms then
  return {0, allow_at - now_ms}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now_ms) + 1000)
return {1, 0}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_seconds: int


class RateLimiter:
    """Checks that arrive together share one pipelined round trip to Redis (each is still
    its own atomic script run): under a surge a process asks about hundreds of clients a
    second, and one round trip each was a sixth of a front door's CPU."""

    def __init__(self, redis: RedisClient, prefix: str, per_minute: int, burst: int) -> None:
        self._redis = redis
        self._prefix = prefix + "rl:"
        self._interval_ms = 60_000 / per_minute
        self._tolerance_ms = self._interval_ms * burst
        self._script = redis.register_script(_GCRA)
        self._checks: Coalescer[None, str, list[int]] = Coalescer(
            lambda _, keys: self._run(keys), _PIPELINE_MAX
        )

    async def check(self, client: str) -> Decision:
        allowed, retry_ms = await self._checks.submit(None, self._prefix + client)
        return Decision(bool(allowed), max(1, math.ceil(int(retry_ms) / 1000)))

    async def _run(self, keys: list[str]) -> list[list[int]]:
        limits = (self._interval_ms, self._tolerance_ms)
        return await run_each(self._redis, self._script, [([key], limits) for key in keys])


LIMITER_KEY = web.AppKey("rate_limiter", RateLimiter)

_EXEMPT_PATHS = frozenset({"/healthz", "/metrics"})
# Routes (by their pattern, e.g. "/queue/{event_id}/join") that enforce their own, stricter
# per-client limits: the generic check would only cost them another Redis round trip.
OWN_LIMITS_KEY = web.AppKey("routes_with_own_limits", frozenset)

# Whether a request carries its sender's valid signature (a webhook's).
SignatureCheck = Callable[[web.Request], Awaitable[bool]]
# Routes (by pattern) whose senders prove who they are by a signature: a correctly signed
# request is not limited by address (Stripe delivers from a few addresses, in bursts), one
# without a valid signature is limited like any other.
SIGNED_ROUTES_KEY: web.AppKey[Mapping[str, SignatureCheck]] = web.AppKey("signed_routes")


class TrustedProxies:
    """The peers whose ``X-Real-IP`` names the client (TICKETING_TRUSTED_PROXIES); from any
    other peer the header is the client's own claim, and ignored."""

    def __init__(self, cidrs: str) -> None:
        self._networks = tuple(ip_network(c) for c in cidrs.split(",") if c.strip())
        # Peers are few (the gateway's addresses) unless clients come straight in.
        self.trusts = functools.lru_cache(maxsize=4096)(self._trusts)

    def _trusts(self, peer: str) -> bool:
        try:
            address = ip_address(peer)
        except ValueError:
            return False
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)


TRUSTED_PROXIES_KEY = web.AppKey("trusted_proxies", TrustedProxies)
_DEFAULT_PROXIES = TrustedProxies(default("TICKETING_TRUSTED_PROXIES"))


def _route_pattern(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    return None if resource is None else resource.canonical


def _has_own_limits(request: web.Request) -> bool:
    own = request.app.get(OWN_LIMITS_KEY)
    return own is not None and _route_pattern(request) in own


def client_identity(request: web.Request) -> str:
    """Who is asking: the verified user when a valid token comes with the request, else the
    client's address (:func:`client_address`)."""
    try:
        principal = optional_principal(request)
    except Problem:
        principal = None  # a bad token is the handler's to reject; count it by address
    if principal is not None:
        return "user:" + principal.user_id
    return "ip:" + client_address(request)


def client_address(request: web.Request) -> str:
    """The client's address: the one the gateway names in ``X-Real-IP`` when the peer is a
    trusted proxy (the gateway), else the peer's own; a header from anyone else is ignored,
    so a client cannot pick the address its limits are counted under."""
    peer = request.remote or ""
    if peer and request.app.get(TRUSTED_PROXIES_KEY, _DEFAULT_PROXIES).trusts(peer):
        try:
            return str(ip_address(request.headers.get("X-Real-IP", "").strip()))
        except ValueError:
            pass  # no usable header: the peer itself is the client
    return peer or "unknown"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _signed(request: web.Request) -> bool:
    signed = request.app.get(SIGNED_ROUTES_KEY)
    check = signed.get(_route_pattern(request) or "") if signed else None
    return check is not None and await check(request)


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limiter = request.app.get(LIMITER_KEY)
    if limiter is None or request.path in _EXEMPT_PATHS or _has_own_limits(request):
        return await handler(request)
    if await _signed(request):
        return await handler(request)
    try:
        decision = await limiter.check(client_identity(request))
    except REDIS_ERRORS:
        # Fail open: a Redis outage must not take the read path down with it.
        DEPENDENCY_ERRORS.labels(request.app[SERVICE_KEY], "redis").inc()
        log.warning("rate limiter unavailable; letting %s through", request.path)
        return await handler(request)
    if not decision.allowed:
        raise Problem(
            429,
            "rate_limited",
            "Too many requests; slow down and retry after the given delay.",
            headers={"Retry-After": str(decision.retry_after_seconds)},
        )
    return await handler(request)
