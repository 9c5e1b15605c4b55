"""Typed application keys of catalog_api (aiohttp-demos style, no string keys)."""

from __future__ import annotations

from aiohttp import web

from catalog_api.breaker import CircuitBreaker
from catalog_api.replicas import ReplicaSet
from catalog_api.ttl_cache import TtlCache
from catalog_api.typesense_reader import TypesenseReader

TYPESENSE_KEY = web.AppKey("typesense", TypesenseReader)
PG_BREAKER_KEY = web.AppKey("pg_breaker", CircuitBreaker)
TYPESENSE_BREAKER_KEY = web.AppKey("typesense_breaker", CircuitBreaker)
# location text -> canonical city values, resolved through Typesense.
CITY_RESOLUTIONS_KEY = web.AppKey("city_resolutions", TtlCache)
# The streaming replicas catalog reads use (absent without TICKETING_DATABASE_REPLICA_URLS).
REPLICAS_KEY = web.AppKey("pg_replicas", ReplicaSet)
