"""What the on-sale benchmark sets up and reads back: its settings and database (two
queue-enabled events of one arena, for the paid run and the reserve-only run), the whole
stack behind the gateway (booking workers, waitingrooms, nginx, a localstripe with simulated
latency), the per-second sampler, and the ledger's reads from PostgreSQL and localstripe.

The pieces other benches already have are theirs: the database, vhost and run lock come
from bench/reserve_setup.py, process groups and Redis clean-up from bench/reserve.py,
ports, health waits and service environments from bench/search.py, the load-process
protocol and queue API calls from bench/surge.py."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg
import psycopg

from bench.reserve import (
    ProcessGroups,
    start_booking_workers,
    start_nginx,
    wait_for_consumers,
)
from bench.reserve_setup import create_bench_database
from bench.search import free_port, http_get, service_env, wait_for
from bench.surge_setup import queue_bench_settings
from deploy.render_nginx import render, variables
from ticketing.config import Settings
from ticketing.messages import BOOKING_QUEUE_PREFIX, booking_routing_key

ROOT = Path(__file__).resolve().parents[1]
NAME = "ticketing_bench_onsale"
REDIS_PREFIX = "tkbench-onsale:"
LOCALSTRIPE_SERVER = ROOT / "deploy" / "localstripe_server.py"


def onsale_settings(
    base: Settings, waitingrooms: int, claim_seconds: int, latency_ms: int, frontdoors: int = 1
) -> Settings:
    localstripe = free_port()
    return queue_bench_settings(
        base,
        NAME,
        REDIS_PREFIX,
        waitingrooms,
        frontdoors,
        localstripe_port=localstripe,
        stripe_api_base=f"http://127.0.0.1:{localstripe}",
        stripe_latency_ms=latency_ms,
        admission_claim_seconds=claim_seconds,
    )


@dataclass(frozen=True, slots=True)
class OnsaleEvents:
    paid: int
    reserve_only: int


async def create_onsale_database(database_url: str, seats: int) -> OnsaleEvents:
    """bench/reserve.py's fresh database (one arena, three events, every ticket COPYed);
    two of its events get a waiting room and an on-sale a day away, which each run moves
    to a few seconds after its fans are ready."""
    events = await create_bench_database(database_url, seats)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """UPDATE events SET queue_enabled = true, on_sale_at = now() + interval '1 day',
                                 name = CASE id WHEN $1 THEN 'On-sale, paid'
                                                ELSE 'On-sale, reserve only' END
               WHERE id = ANY($2::bigint[])""",
            events.hot,
            [events.hot, events.baseline],
        )
    finally:
        await conn.close()
    return OnsaleEvents(paid=events.hot, reserve_only=events.baseline)


def set_on_sale(database_url: str, event_id: int, at: float) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE events SET on_sale_at = to_timestamp(%s) WHERE id = %s", (at, event_id)
        )


def localstripe_command(settings: Settings, run_dir: Path) -> tuple[list[str], dict, bool]:
    """(argv, environment, whether it simulates latency): deploy/localstripe_server.py when
    this tree has it (state under the run's directory, latency from the settings), else
    plain localstripe, which keeps its store in memory and answers at once."""
    env = service_env(settings)
    if LOCALSTRIPE_SERVER.exists():
        state = run_dir / "localstripe" / "state.pickle"
        state.parent.mkdir(parents=True, exist_ok=True)
        state.unlink(missing_ok=True)
        env["TICKETING_LOCALSTRIPE_STATE"] = str(state)
        return [sys.executable, "-m", "deploy.localstripe_server", "--from-scratch"], env, True
    binary = str(Path(sys.executable).with_name("localstripe"))
    return [binary, "--port", str(settings.localstripe_port), "--from-scratch"], env, False


def start_stack(
    settings: Settings, workers: int, procs: ProcessGroups, run_dir: Path, event_id: int
) -> tuple[subprocess.Popen[bytes], list[subprocess.Popen[bytes]], str, bool]:
    """localstripe, the booking workers (slots as deploy/Procfile gives them), the
    waitingroom processes (``--supervise``, as make run starts them) and the gateway
    (nginx from deploy/nginx.conf.template through ``python -m deploy.gateway``); returns
    (waitingroom supervisor, workers, gateway URL, whether the provider latency is
    simulated) once each answers."""
    argv, env, simulated = localstripe_command(settings, run_dir)
    procs.start("localstripe", argv, env, run_dir / "localstripe.log")
    stripe = settings.stripe_api_base
    wait_for("localstripe", lambda: http_get(stripe + "/v1/payment_intents")[0] == 401, 30)
    booking = start_booking_workers(settings, workers, procs, run_dir)
    supervisor = procs.start(
        "waitingroom",
        [sys.executable, "-m", "waitingroom", "--supervise"],
        service_env(settings),
        run_dir / "waitingroom.log",
    )
    start_nginx(render(variables(settings)), settings, procs, run_dir)
    for port in settings.waitingroom_ports + settings.frontdoor_ports:
        wait_for(
            f"waitingroom on {port}",
            lambda p=port: http_get(f"http://127.0.0.1:{p}/healthz")[0] == 200,
            60,
        )
    queue = BOOKING_QUEUE_PREFIX + booking_routing_key(event_id, settings.booking_partitions)
    asyncio.run(wait_for_consumers(settings.amqp_url, queue, workers, 60))
    gateway = f"http://127.0.0.1:{settings.gateway_port}"
    # A booking route without a token is the waitingroom's 401 through the gateway.
    wait_for("the gateway", lambda: http_get(gateway + "/booking/1")[0] == 401, 30)
    procs.check_alive()
    return supervisor, booking, gateway, simulated


def sample(conn: psycopg.Connection, queue: dict, event_id: int, pay: bool) -> dict:
    """One second's figures: the queue as the API shows it, the event's live holds and
    bookings and the seats sold (booked; held too in the reserve-only run)."""
    holds, bookings = conn.execute(
        """SELECT (SELECT count(*) FROM holds WHERE event_id = %s AND status = 'held'),
                  (SELECT count(*) FROM bookings WHERE event_id = %s AND status = 'confirmed')""",
        (event_id, event_id),
    ).fetchone()
    reserved, booked = conn.execute(
        """SELECT count(*) FILTER (WHERE status = 'reserved'),
                  count(*) FILTER (WHERE status = 'booked')
           FROM tickets WHERE event_id = %s""",
        (event_id,),
    ).fetchone()
    return {
        "at": time.time(),
        "pre_queue": queue.get("pre_queue", ""),  # a newer figure: not in every tree
        "door_level": queue.get("effective_challenge_difficulty"),  # likewise
        "waiting": queue["waiting"],
        "active": queue["active"],
        "admitted_total": queue["admitted_total"],
        "holds": holds,
        "bookings": bookings,
        "seats_sold": booked if pay else booked + reserved,
        "available": conn.execute(
            "SELECT count(*) FROM tickets WHERE event_id = %s AND status = 'available'",
            (event_id,),
        ).fetchone()[0],
    }


@dataclass(frozen=True, slots=True)
class Ledger:
    """What PostgreSQL says about one event after its run."""

    bookings: dict[str, tuple[str, list[int], str | None, float]]  # id: user, seats, PI, at
    refunded_bookings: int
    tickets: dict[int, tuple[str, str | None, str | None]]  # id: status, booking, hold
    holds: dict[str, tuple[str, list[int], str, float]]  # id: user, seats, status, at
    all_hold_ids: set[str]  # of every event: localstripe's intents name them
    on_sale_at: float


async def read_ledger(database_url: str, event_id: int) -> Ledger:
    conn = await asyncpg.connect(database_url)
    try:
        bookings = await conn.fetch(
            """SELECT b.id::text, b.user_id, b.status, b.payment_intent_id, h.ticket_ids,
                      extract(epoch FROM b.created_at)::float8 AS at
               FROM bookings b JOIN holds h ON h.id = b.hold_id WHERE b.event_id = $1""",
            event_id,
        )
        tickets = await conn.fetch(
            """SELECT id, status::text, booking_id::text, hold_id::text
               FROM tickets WHERE event_id = $1""",
            event_id,
        )
        holds = await conn.fetch(
            """SELECT id::text, user_id, ticket_ids, status,
                      extract(epoch FROM created_at)::float8 AS at
               FROM holds WHERE event_id = $1""",
            event_id,
        )
        hold_ids = {r[0] for r in await conn.fetch("SELECT id::text FROM holds")}
        on_sale = await conn.fetchval(
            "SELECT extract(epoch FROM on_sale_at)::float8 FROM events WHERE id = $1", event_id
        )
    finally:
        await conn.close()
    return Ledger(
        bookings={
            r["id"]: (r["user_id"], sorted(r["ticket_ids"]), r["payment_intent_id"], r["at"])
            for r in bookings
            if r["status"] == "confirmed"
        },
        refunded_bookings=sum(r["status"] == "refunded" for r in bookings),
        tickets={r["id"]: (r["status"], r["booking_id"], r["hold_id"]) for r in tickets},
        holds={
            r["id"]: (r["user_id"], sorted(r["ticket_ids"]), r["status"], r["at"]) for r in holds
        },
        all_hold_ids=hold_ids,
        on_sale_at=on_sale,
    )


def stripe_objects(settings: Settings, kind: str) -> list[dict]:
    """Every object of one kind (payment_intents, refunds) localstripe holds, one page."""
    request = urllib.request.Request(
        f"{settings.stripe_api_base}/v1/{kind}?limit=10000000",
        headers={"Authorization": f"Bearer {settings.stripe_api_key}"},
    )
    with urllib.request.urlopen(request, timeout=120) as resp:
        return json.loads(resp.read())["data"]


def my_bookings(gateway: str, token: str) -> list[dict]:
    """GET /me/bookings, every page."""
    items, cursor = [], None
    while True:
        url = f"{gateway}/me/bookings?limit=100" + (f"&cursor={quote(cursor)}" if cursor else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            page = json.loads(resp.read())
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items
