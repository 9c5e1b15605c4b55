"""What the reserve benchmark sets up and checks: its own database with one big venue and
three events of it (the hot one, the Postgres baseline's copy, a warm-up one), its own
RabbitMQ vhost, and the oversell check read back from the database after the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import psycopg
from redis import Redis, RedisCluster
from redis.cluster import ClusterNode

from ticketing.db import migrate
from ticketing.domain.seating import Section, ticket_records
from ticketing.redis_url import parse_redis_url

SECTION_NAMES = ["Floor", *(f"Lower {n}" for n in range(101, 105))]
SECTION_NAMES += [f"Upper {n}" for n in range(201, 206)]
SEATS_PER_ROW = 50


# Two runs at once (two sessions, two worktrees) would drop each other's database and vhost
# mid-run and, on two cores, spoil each other's figures anyway: one run at a time per server.
_RUN_LOCK_KEY = int.from_bytes(b"tkbresv!", "big")


class RunLock:
    """A session advisory lock on the Postgres server, held for the whole run."""

    def __init__(self, database_url: str) -> None:
        self.url = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
        self.conn: psycopg.Connection | None = None

    def __enter__(self) -> RunLock:
        name = f"bench/reserve.py pid {os.getpid()} in {os.getcwd()}"
        conn = psycopg.connect(self.url, autocommit=True, application_name=name)
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (_RUN_LOCK_KEY,)).fetchone()[0]:
            # A bigint advisory key shows in pg_locks as classid (high half), objid (low half).
            holder = conn.execute(
                """SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                   WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                     AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid""",
                (_RUN_LOCK_KEY >> 32, _RUN_LOCK_KEY & 0xFFFFFFFF),
            ).fetchone()
            conn.close()
            who = holder[0] if holder else "another run"
            raise SystemExit(f"bench: another reserve benchmark is running ({who}); try later")
        self.conn = conn
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()  # ends the session, and with it the lock


@contextmanager
def wait_for_lock(database_url: str, seconds: float) -> Iterator[None]:
    """The benchmarks' run lock (bench/reserve.py's: two runs on two cores would spoil each
    other's figures), waited for up to ``seconds``, and marked as this bench's."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            lock = RunLock(database_url).__enter__()
            break
        except SystemExit:
            if time.monotonic() > deadline:
                raise
            time.sleep(5)
    try:
        assert lock.conn is not None
        lock.conn.execute(
            "SELECT set_config('application_name', %s, false)",
            (f"{sys.argv[0]} pid {os.getpid()} in {os.getcwd()}",),
        )
        yield
    finally:
        lock.__exit__(None, None, None)


@dataclass(frozen=True, slots=True)
class BenchEvents:
    hot: int
    baseline: int
    warmup: int
    seats: int  # per event


def arena(seats: int) -> list[Section]:
    """Ten sections of equal size, 50 seats a row, as an admin would post the seat map."""
    step = len(SECTION_NAMES) * SEATS_PER_ROW
    if seats < step or seats % step:
        raise ValueError(f"seats must be a positive multiple of {step}, got {seats}")
    rows = seats // step
    return [
        Section(name, rows, SEATS_PER_ROW, price_cents=9000 - 500 * i)
        for i, name in enumerate(SECTION_NAMES)
    ]


async def create_bench_database(
    database_url: str, seats: int, what_if_sql: str = ""
) -> BenchEvents:
    """A fresh, migrated database every run (dropped first), with every ticket COPYed;
    ``what_if_sql`` runs after the migrations (to try an index before proposing one)."""
    migrate.drop_database(database_url)
    migrate.create_database(database_url)
    migrate.upgrade(database_url)
    sections = arena(seats)
    conn = await asyncpg.connect(database_url)
    try:
        if what_if_sql:
            await conn.execute(what_if_sql)
        async with conn.transaction():
            venue_id = await conn.fetchval(
                """INSERT INTO venues (name, city, country, lat, lon, seat_map, capacity)
                   VALUES ('Bench Arena', 'Lisbon', 'PT', 38.7223, -9.1393, $1, $2)
                   RETURNING id""",
                json.dumps({"sections": [s.to_json() for s in sections]}),
                sum(s.capacity for s in sections),
            )
            performer_id = await conn.fetchval(
                "INSERT INTO performers (name, genre) VALUES ('The Benchmarks', 'rock') "
                "RETURNING id"
            )
            starts_at = datetime.now(UTC) + timedelta(days=30)
            ids = []
            for name in ("Hot on-sale", "Postgres baseline copy", "Warm-up"):
                event_id = await conn.fetchval(
                    """INSERT INTO events (name, starts_at, venue_id, performer_id,
                                           queue_enabled, currency)
                       VALUES ($1, $2, $3, $4, false, 'EUR') RETURNING id""",
                    name,
                    starts_at,
                    venue_id,
                    performer_id,
                )
                await conn.copy_records_to_table(
                    "tickets",
                    columns=("event_id", "section", "row", "number", "price_cents"),
                    records=ticket_records(event_id, sections),
                )
                ids.append(event_id)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return BenchEvents(hot=ids[0], baseline=ids[1], warmup=ids[2], seats=seats)


def with_vhost(amqp_url: str, vhost: str) -> str:
    """``TICKETING_AMQP_URL`` (one node's URL, or a cluster's, space-separated) with every
    URL's vhost set to ``vhost``."""
    return " ".join(
        urlunsplit(urlsplit(url)._replace(path="/" + quote(vhost, safe="")))
        for url in amqp_url.split()
    )


def sync_redis(url: str) -> Redis | RedisCluster:
    """A blocking client for a bench's own bookkeeping (clearing its keys, listening to the
    queue's channel), on one server or a Redis Cluster as ``TICKETING_REDIS_URL`` names it.
    A cluster's SCAN covers every primary, DELETE splits its keys by slot, and a PUBLISH
    reaches a subscriber on any node."""
    target = parse_redis_url(url)
    if target.mode == "cluster":
        nodes = [ClusterNode(host, port) for host, port in target.nodes]
        return RedisCluster(startup_nodes=nodes, password=target.password)
    return Redis.from_url(url)


def rabbitmqctl(*args: str, check: bool = True) -> None:
    """The machine's rabbitmqctl, or ``$RABBITMQCTL`` (bench/scale.py points it, with
    RABBITMQ_NODENAME and the cookie's HOME, at a cluster node of its own)."""
    command = [os.environ.get("RABBITMQCTL", "rabbitmqctl"), "-q", *args]
    subprocess.run(command, check=check, capture_output=True, timeout=60)


def create_vhost(vhost: str, user: str) -> None:
    rabbitmqctl("delete_vhost", vhost, check=False)  # left over from a killed run
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")


def delete_vhost(vhost: str) -> None:
    rabbitmqctl("delete_vhost", vhost, check=False)


@dataclass(frozen=True, slots=True)
class Inventory:
    """What the database says about the hot event after the run."""

    available: int
    reserved: int
    booked: int
    holds: list[tuple[str, list[int]]]  # (fan, ticket ids) of every live hold
    by_id: dict[str, tuple[str, list[int], float]]  # hold id -> (fan, ticket ids, created at)
    seats_in_two_holds: int  # granted to more than one live hold
    reserved_not_in_hold: int  # reserved ticket whose hold does not list it (or is not live)
    users_over_cap: int


async def read_inventory(database_url: str, event_id: int, cap: int) -> Inventory:
    conn = await asyncpg.connect(database_url)
    try:
        counts = dict(
            await conn.fetch(
                "SELECT status::text, count(*) FROM tickets WHERE event_id = $1 GROUP BY 1",
                event_id,
            )
        )
        holds = await conn.fetch(
            """SELECT id::text, user_id, ticket_ids, extract(epoch FROM created_at) AS at
               FROM holds WHERE event_id = $1 AND status = 'held'""",
            event_id,
        )
        twice = await conn.fetchval(
            """SELECT count(*) FROM (
                   SELECT t FROM holds, unnest(ticket_ids) AS t
                   WHERE event_id = $1 AND status = 'held' GROUP BY t HAVING count(*) > 1) d""",
            event_id,
        )
        stray = await conn.fetchval(
            """SELECT count(*) FROM tickets t LEFT JOIN holds h ON h.id = t.hold_id
               WHERE t.event_id = $1 AND t.status = 'reserved'
                 AND (h.id IS NULL OR h.status <> 'held' OR NOT t.id = ANY (h.ticket_ids))""",
            event_id,
        )
        over = await conn.fetchval(
            """SELECT count(*) FROM (
                   SELECT user_id FROM holds WHERE event_id = $1 AND status = 'held'
                   GROUP BY user_id HAVING sum(cardinality(ticket_ids)) > $2) u""",
            event_id,
            cap,
        )
    finally:
        await conn.close()
    return Inventory(
        available=counts.get("available", 0),
        reserved=counts.get("reserved", 0),
        booked=counts.get("booked", 0),
        holds=[(r["user_id"], sorted(r["ticket_ids"])) for r in holds],
        by_id={r["id"]: (r["user_id"], sorted(r["ticket_ids"]), float(r["at"])) for r in holds},
        seats_in_two_holds=twice,
        reserved_not_in_hold=stray,
        users_over_cap=over,
    )


def oversell_problems(
    inv: Inventory, seats: int, granted: dict[str, list[int]], unclear: set[str], wrong_size: int
) -> tuple[list[str], list[str]]:
    """Every way the run broke "a seat is never held by two fans, and a fan's answer is the
    truth" (empty when it did not), and notes that are no fault (a hold whose answer did not
    arrive in time: the fan gets it by retrying with the same Idempotency-Key)."""
    problems = []
    handed_out = [ticket for ids in granted.values() for ticket in ids]
    if len(handed_out) != len(set(handed_out)):
        problems.append(f"{len(handed_out) - len(set(handed_out))} seat(s) in two 201 answers")
    problems += _inventory_problems(inv, seats)
    in_db: dict[str, list[list[int]]] = {}
    for user, ids in inv.holds:
        in_db.setdefault(user, []).append(ids)
    differ = sum(in_db.get(user) != [sorted(ids)] for user, ids in granted.items())
    if differ:
        problems.append(f"{differ} of the 201 answers differ from the fan's hold in the database")
    refused = [u for u in in_db if u not in granted and u not in unclear]
    if refused:
        problems.append(f"{len(refused)} fan(s) answered 409 hold seats in the database")
    if inv.users_over_cap:
        problems.append(f"{inv.users_over_cap} fan(s) over the per-event cap")
    if wrong_size:
        problems.append(f"{wrong_size} hold(s) of another size than asked")
    late = [u for u in in_db if u not in granted and u in unclear]
    notes = [
        f"{len(inv.holds):,} live holds = {len(granted):,} answered 201 + {len(late)} answered "
        f"503/timeout; {inv.reserved:,} seats reserved, {inv.available:,} available"
    ]
    return problems, notes


def _inventory_problems(inv: Inventory, seats: int) -> list[str]:
    """What the database alone shows broken: seats in two holds or outside theirs, counts
    that do not add up."""
    problems = []
    held_seats = sum(len(ids) for _, ids in inv.holds)
    if inv.seats_in_two_holds:
        problems.append(f"{inv.seats_in_two_holds} seat(s) in two live holds")
    if inv.reserved_not_in_hold:
        problems.append(f"{inv.reserved_not_in_hold} reserved seat(s) outside their hold")
    if held_seats != inv.reserved:
        problems.append(f"live holds list {held_seats} seats, {inv.reserved} are reserved")
    if inv.available + inv.reserved + inv.booked != seats:
        total = inv.available + inv.reserved + inv.booked
        problems.append(f"available + reserved + booked = {total}, not {seats}")
    return problems
