"""Streaming replicas of the catalog's reads: a pool per replica, a sampler of each one's
role and replay lag (exported as metrics), and the choice of the replica a read may use.

A replica is used while, at its last sample, it was in recovery and its lag plus the time
since that sample is at most ``TICKETING_PG_REPLICA_MAX_LAG_SECONDS``: so what it answers
is never older than that bound. Lag is measured against the primary: the bytes of WAL the
replica has not replayed (``pg_current_wal_lsn()`` on the primary minus
``pg_last_wal_replay_lsn()`` on the replica), and in seconds, 0 when it has replayed
everything, else the time since the last transaction it replayed committed. A listed node
that is not in recovery (the primary, or a replica promoted) is read from only while no
replica is usable and the read needs no position (see ``choose``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
from prometheus_client import Gauge

from ticketing.config import Settings
from ticketing.web import DEPENDENCY_TIMEOUT_SECONDS, EngineState

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 0.5

REPLICA_LAG_SECONDS = Gauge(
    "ticketing_pg_replica_lag_seconds",
    "How far a PostgreSQL replica's replay is behind the primary, in seconds (NaN while "
    "it cannot be sampled or is not a replica).",
    ["service", "replica"],
)
REPLICA_LAG_BYTES = Gauge(
    "ticketing_pg_replica_lag_bytes",
    "WAL bytes the primary has written that a replica has not replayed (NaN while unknown).",
    ["service", "replica"],
)
REPLICA_USABLE = Gauge(
    "ticketing_pg_replica_usable",
    "1 while catalog reads may go to this replica (reachable, in recovery, lag in bound).",
    ["service", "replica"],
)

# One round trip per replica. LSNs as byte positions (bigint): pg_lsn has no codec here.
_REPLICA_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint AS replay_lsn,
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')::bigint AS receive_lsn,
       extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8
           AS since_replay
"""
PRIMARY_LSN_SQL = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"


def node_name(url: str) -> str:
    """``host:port`` (or hosts) of a URL: a label with no user or password."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    return netloc or "local"


def server_names(url: str) -> list[str]:
    """Each ``host:port`` of a (possibly multi-host) URL."""
    return [h if ":" in h else h + ":5432" for h in node_name(url).split(",")]


@dataclass
class Sample:
    """What the last sample saw of a replica."""

    at: float = 0.0  # time.monotonic() of the sample; 0: never sampled
    reachable: bool = False
    in_recovery: bool = False
    replay_lsn: int = 0
    lag_seconds: float | None = None
    lag_bytes: int | None = None


class Replica:
    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self.url = url
        self.name = node_name(url)
        self.pool = pool
        self.sample = Sample()

    def usable(self, bound: float, min_lsn: int | None, now: float) -> bool:
        s = self.sample
        if not (s.reachable and s.in_recovery) or s.lag_seconds is None:
            return False
        if min_lsn is not None and s.replay_lsn < min_lsn:
            return False
        return s.lag_seconds + (now - s.at) <= bound

    def promoted(self, bound: float, now: float) -> bool:
        """Reachable and out of recovery at a sample within the bound: a primary."""
        s = self.sample
        return s.reachable and not s.in_recovery and now - s.at <= bound


class ReplicaSet:
    """The replicas of one process, sampled every ``sample_seconds``."""

    def __init__(
        self,
        settings: Settings,
        primary: asyncpg.Pool,
        service: str,
        sample_seconds: float = SAMPLE_SECONDS,
    ) -> None:
        self.urls = settings.database_replica_urls.split()
        self.primary_url = settings.database_url
        self.primary = primary
        self.bound = settings.pg_replica_max_lag_seconds
        self.service = service
        self.sample_seconds = sample_seconds
        self.replicas: list[Replica] = []
        self._turn = itertools.count()
        self._task: asyncio.Task[None] | None = None

    async def open(self, pool_max: int) -> None:
        for url in self.urls:
            # min_size=0: the service starts while a replica is down, and uses it once up.
            pool = await asyncpg.create_pool(
                url,
                min_size=0,
                max_size=pool_max,
                timeout=DEPENDENCY_TIMEOUT_SECONDS,
                command_timeout=10,
            )
            self.replicas.append(Replica(url, pool))
        await self.sample_all()
        self._task = asyncio.create_task(self._sample_forever())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for replica in self.replicas:
            await replica.pool.close()

    def choose(self, min_lsn: int | None = None) -> Replica | None:
        """A usable replica (in turn), having replayed ``min_lsn`` when given; None: the
        read goes to the primary. Without a usable replica, a listed node out of recovery
        answers a read that needs no position: during a failover, the standby promoted
        before it takes writes (pg_auto_failover holds them until the old primary is
        fenced), which the primary's URL (read-write) does not reach yet."""
        now = time.monotonic()
        usable = [r for r in self.replicas if r.usable(self.bound, min_lsn, now)]
        if not usable and min_lsn is None:
            usable = [r for r in self.replicas if r.promoted(self.bound, now)]
        if not usable:
            return None
        return usable[next(self._turn) % len(usable)]

    def failed(self, replica: Replica) -> None:
        """A read on ``replica`` could not reach it: unused until a sample reaches it."""
        replica.sample = Sample(at=time.monotonic())
        self._export(replica)

    def engine_state(self, primary_up: bool) -> EngineState:
        """Mode ``replicas``: the distinct servers named (the primary's URL and the
        replicas'), healthy those answering in their role (the primary; the replicas
        that reads may use)."""
        names = set(server_names(self.primary_url))
        now = time.monotonic()
        promoted = 0
        healthy = 0
        for replica in self.replicas:
            names.update(server_names(replica.url))
            healthy += replica.usable(self.bound, None, now)
            promoted += replica.promoted(self.bound, now)
        # The primary may be listed among the replicas too (a formation's nodes are).
        healthy += max(int(primary_up), promoted)
        return EngineState("replicas", nodes=len(names), healthy=healthy)

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sample_seconds)
            try:
                await self.sample_all()
            except Exception:  # a sampler that dies would leave stale samples in use
                log.exception("replica sampling failed")

    async def sample_all(self) -> None:
        primary_lsn = await self._primary_lsn()
        await asyncio.gather(*(self._sample(r, primary_lsn) for r in self.replicas))

    async def _primary_lsn(self) -> int | None:
        try:
            async with asyncio.timeout(DEPENDENCY_TIMEOUT_SECONDS):
                lsn: int | None = await self.primary.fetchval(PRIMARY_LSN_SQL)
        except Exception:  # primary down or in recovery: lag from the replica's own view
            return None
        return lsn

    async def _sample(self, replica: Replica, primary_lsn: int | None) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(DEPENDENCY_TIMEOUT_SECONDS):
                row = await replica.pool.fetchrow(_REPLICA_SQL)
            if row is None:  # a SELECT without FROM always has its one row
                raise RuntimeError("the replica sample returned no row")
        except Exception as exc:  # unreachable, timed out, refusing: not used
            log.debug("replica %s not sampled: %s", replica.name, type(exc).__name__)
            replica.sample = Sample(at=started)
        else:
            replica.sample = _measure(row, primary_lsn, started)
        self._export(replica)

    def _export(self, replica: Replica) -> None:
        s = replica.sample
        nan = float("nan")
        labels = (self.service, replica.name)
        REPLICA_LAG_SECONDS.labels(*labels).set(nan if s.lag_seconds is None else s.lag_seconds)
        REPLICA_LAG_BYTES.labels(*labels).set(nan if s.lag_bytes is None else s.lag_bytes)
        usable = replica.usable(self.bound, None, time.monotonic())
        REPLICA_USABLE.labels(*labels).set(1 if usable else 0)


def _measure(row: asyncpg.Record, primary_lsn: int | None, at: float) -> Sample:
    replay = row["replay_lsn"]
    if not row["in_recovery"] or replay is None:
        return Sample(at=at, reachable=True, in_recovery=bool(row["in_recovery"]))
    # Without the primary (down, or a failover under way), what the replica has received
    # is the most it can know of.
    ahead = primary_lsn if primary_lsn is not None else row["receive_lsn"]
    lag_bytes = max(0, (ahead or replay) - replay)
    since = row["since_replay"]
    lag_seconds = 0.0 if lag_bytes == 0 else max(0.0, since if since is not None else 1e9)
    return Sample(at, True, True, replay, lag_seconds, lag_bytes)
