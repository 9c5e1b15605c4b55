"""The chaos on-sale: bench/onsale.py's paid on-sale while a schedule breaks each component
once and brings it back, then the on-sale's ledger checks and the fans' answers.

    .venv/bin/python bench/chaos.py                              # 20,000 fans, 10,000 seats
    .venv/bin/python bench/chaos.py --fans 600 --seats 500 --window 8 --delay 10   # ~3.5 min

Never touches the machine's shared PostgreSQL, Redis and RabbitMQ (other runs use them):
it starts its own on free ports with their data in a temporary directory
(bench/chaos_servers.py), and its own Typesense; then the stack as make run has it
(catalog_api, search_sync, localstripe, booking workers and a payments worker, the
waitingroom's supervisor with its front door, the nginx gateway), the on-sale's fans
(bench/onsale_load.py, keeping a timeline; reconnecting their sockets, backing off after a
502 and rejoining with their queue tickets as the queue page does) and light probes of
search, view, join and status (bench/chaos_probe.py). From --delay seconds after on-sale, one
fault at a time, each followed by --window quiet seconds (bench/chaos_faults.py): kill -9
of the booking worker first in line for the event's partition, of the payments worker, of
a waitingroom process and of search_sync; Typesense stopped for --typesense-down seconds;
localstripe down for --localstripe-down seconds (SIGTERM, then started on its saved
state); Redis killed and started on its AOF, then killed and started empty; PostgreSQL and
RabbitMQ restarted.

Printed: a row per fault (how long the component was down; how long joins, reserves,
confirms, searches and views took to recover after it was back; how long until the sale
rate was back; the 5xx, unanswered requests, reserves refused 403 and degraded searches
from its start to the end of its window), the order check of each Redis restart (fans
waiting at the restart are admitted in the order of their places: bench/chaos_report.py),
and PASS/FAIL per check; exit status 0 only when every check passes. The admission rate is
set so the sale lasts about as long as the schedule (unless --admit-per-minute is given),
and is also the queue's default setting.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import chaos_report as cr  # noqa: E402
from bench.chaos_faults import ChaosProcs, Faults, Schedule  # noqa: E402
from bench.chaos_probe import Probes  # noqa: E402
from bench.chaos_servers import PrivateServers  # noqa: E402
from bench.chaos_table import print_results  # noqa: E402
from bench.onsale import balance, build_parser, on_sale  # noqa: E402
from bench.onsale_setup import (  # noqa: E402
    create_onsale_database,
    onsale_settings,
    read_ledger,
    start_stack,
)
from bench.search import http_get, say, service_env, wait_for  # noqa: E402
from bench.surge import size_processes, wait_for_lock  # noqa: E402
from bench.surge_setup import consecutive_ports, wait_for_time_wait  # noqa: E402
from ticketing.config import Settings  # noqa: E402
from ticketing.settings_schema import Secret, Url  # noqa: E402
from waitingroom.processes import waitingroom_pids  # noqa: E402

RUN_DIR = ROOT / ".run" / "bench" / "chaos"
FAULTS = list(Faults.LABELS)
# Rough seconds each fault keeps its component away, to size the sale to the schedule.
EXPECTED_DOWN = {"waitingroom": 8, "rabbitmq": 15, "typesense": 4, "localstripe": 2}


def build_chaos_parser() -> argparse.ArgumentParser:
    parser = build_parser("bench/chaos.py", __doc__)
    parser.set_defaults(admit_per_minute=0, timeout=0)
    parser.add_argument("--faults", default=",".join(FAULTS), help="which, in order")
    parser.add_argument("--delay", type=float, default=20, help="on-sale to the first fault, s")
    parser.add_argument("--window", type=float, default=25, help="quiet seconds after each")
    parser.add_argument("--typesense-down", type=float, default=10)
    parser.add_argument("--localstripe-down", type=float, default=20)
    parser.add_argument(
        "--order-tolerance",
        type=float,
        default=1.0,
        help="seconds by which a fan behind may be admitted before one ahead",
    )
    parser.add_argument("--summary", type=Path, help="also write the results here (JSON)")
    parser.add_argument("--keep", action="store_true", help="keep the servers' directory")
    return parser


def schedule_seconds(args: argparse.Namespace, keys: list[str]) -> float:
    down: dict[str, float] = {**EXPECTED_DOWN, "typesense": args.typesense_down + 4}
    down["localstripe"] = args.localstripe_down + 2
    return float(args.delay + sum(args.window + down.get(k, 3) for k in keys))


def size_sale(args: argparse.Namespace, keys: list[str]) -> None:
    size_for(args, schedule_seconds(args, keys))


def size_for(args: argparse.Namespace, span: float) -> None:
    """An admission rate at which the seats last about as long as the schedule, ``span``
    seconds (each admitted fan buys about 2.25 seats: 1-4, 5% leave and 5% abandon), and a
    timeout."""
    if not args.admit_per_minute:
        args.admit_per_minute = max(30, math.ceil(args.seats / 2.25 / (span * 1.1) * 60))
    if not args.timeout:
        args.timeout = 2 * span + 120
    args.pre_queue_seconds = args.pre_queue_seconds or 5 + args.fans / 2 / 500


def chaos_settings(args: argparse.Namespace, servers: PrivateServers, root: Path) -> Settings:
    return stack_settings(
        args,
        root,
        database_url=servers.postgres.url + "/ticketing_chaos",
        redis_url=servers.redis.url,
        amqp_url=servers.rabbitmq.url,
    )


def stack_settings(
    args: argparse.Namespace, root: Path, *, database_url: str, redis_url: str, amqp_url: str
) -> Settings:
    """The on-sale's settings on the run's own servers (bench/chaos_cluster.py's too)."""
    base = onsale_settings(
        Settings.from_env(), args.waitingrooms, args.claim_seconds, args.latency_ms, args.frontdoors
    )
    # Ports of what the run restarts lie below the ephemeral range (consecutive_ports): a
    # port left by a killed process is soon some fan's client socket's (seen: a booking
    # worker's metrics port), and the process could not listen on it again.
    typesense = consecutive_ports(2) + 1  # and the port below it, for its Raft peering
    localstripe = consecutive_ports(1)
    return dataclasses.replace(
        base,
        database_url=Url(database_url),
        redis_url=Url(redis_url),
        redis_prefix="tkchaos:",
        amqp_url=Url(amqp_url),
        typesense_port=typesense,
        typesense_url=f"http://127.0.0.1:{typesense}",
        typesense_data_dir=str(root / "typesense"),
        typesense_api_key=Secret("chaos-" + secrets.token_hex(8)),
        search_sync_metrics_port=consecutive_ports(1),
        localstripe_port=localstripe,
        stripe_api_base=f"http://127.0.0.1:{localstripe}",
        # What the on-sale sets through the API, also the defaults a lost Redis falls back to.
        queue_admit_per_minute=args.admit_per_minute,
        queue_max_active=args.max_active,
        queue_session_seconds=args.session_seconds,
        queue_mode="manual",
    )


def start_search(
    settings: Settings, procs: ChaosProcs, run_dir: Path = RUN_DIR, *, typesense: bool = True
) -> None:
    """catalog_api and search_sync, after a Typesense of their own (``typesense``; a
    cluster run starts its nodes itself)."""
    env = service_env(settings)
    python = sys.executable
    if typesense:
        argv = [python, "-m", "ticketing.typesense_server"]
        procs.start("typesense", argv, env, run_dir / "typesense.log")
        health = settings.typesense_url + "/health"
        wait_for("Typesense", lambda: http_get(health)[0] == 200, 60)
    procs.start("catalog", [python, "-m", "catalog_api"], env, run_dir / "catalog.log")
    procs.start(
        "search_sync", [python, "-m", "search_sync", "run"], env, run_dir / "search_sync.log"
    )


def indexed(settings: Settings) -> bool:
    """search_sync has put the catalog into Typesense (read there: /search would answer
    from PostgreSQL meanwhile)."""
    key = {"X-TYPESENSE-API-KEY": str(settings.typesense_api_key)}
    node = settings.typesense_nodes[0]  # a cluster's first: every node holds the index
    status, body = http_get(f"{node}/aliases/{settings.typesense_collection}", key)
    if status != 200:
        return False
    collection = json.loads(body)["collection_name"]
    status, body = http_get(f"{node}/collections/{collection}", key)
    return status == 200 and json.loads(body).get("num_documents", 0) > 0


def chaos_sale(
    settings: Settings,
    args: argparse.Namespace,
    procs: ChaosProcs,
    gateway: str,
    event_id: int,
    supervisor: subprocess.Popen[bytes],
    workers: list[subprocess.Popen[bytes]],
    schedule: Schedule,
    run_dir: Path = RUN_DIR,
) -> dict[str, Any]:
    """bench/onsale.py's paid on-sale with fans that keep a timeline, reconnect their
    sockets, back off and rejoin (bench/onsale_load.py), the schedule begun at on-sale and
    the run held open while it lasts."""
    groups = {
        "waitingroom": waitingroom_pids(supervisor.pid),
        "booking_worker": [p.pid for p in workers],
    }
    return on_sale(
        settings,
        args,
        procs,
        gateway,
        "chaos",
        event_id,
        True,
        groups,
        run_dir=run_dir,
        load_extra={
            "timeline": True,
            "reconnect_socket": True,
            "backoff": True,
            "max_rejoins": 10,
        },
        on_go=schedule.begin,
        hold_open=schedule.running,
    )


def main(argv: list[str] | None = None) -> int:
    args = size_processes(build_chaos_parser().parse_args(argv))
    keys = [k.strip() for k in args.faults.split(",") if k.strip()]
    unknown = [k for k in keys if k not in Faults.LABELS]
    if unknown:
        raise SystemExit(f"chaos: unknown faults {unknown}; known: {', '.join(FAULTS)}")
    size_sale(args, keys)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("TICKETING_ENV", "dev")  # dev tokens, ?token= sockets
    return on_own_servers(
        args,
        RUN_DIR,
        PrivateServers,
        "private PostgreSQL, Redis and RabbitMQ",
        lambda servers, root: run(args, keys, servers, chaos_settings(args, servers, root)),
    )


class OwnServers(Protocol):
    start_seconds: dict[str, float]

    def start(self) -> None: ...

    def close(self, keep: bool = False) -> None: ...


S = TypeVar("S", bound=OwnServers)


def on_own_servers(
    args: argparse.Namespace,
    run_dir: Path,
    make: Callable[[Path], S],
    what: str,
    body: Callable[[S, Path], int],
) -> int:
    """Under the benchmarks' run lock, ``run_dir`` emptied of the last run's files: the
    servers ``make`` lays out in a new temporary directory, started, ``body`` run on them,
    then stopped (their directory kept with --keep)."""
    with wait_for_lock(Settings.from_env().database_url, args.wait_for_lock):
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.iterdir():
            if stale.is_file():
                stale.unlink()
        root = Path(tempfile.mkdtemp(prefix=f"tk-{run_dir.name}-"))
        servers = make(root)
        try:
            say(f"{what} in {root}")
            servers.start()
            say(
                "started in "
                + ", ".join(f"{k} {v:.1f} s" for k, v in servers.start_seconds.items())
            )
            return body(servers, root)
        finally:
            servers.close(keep=args.keep)


def run(
    args: argparse.Namespace, keys: list[str], servers: PrivateServers, settings: Settings
) -> int:
    procs = ChaosProcs()
    try:
        say(f"creating the on-sale's database: {args.seats:,} seats")
        events = asyncio.run(create_onsale_database(settings.database_url, args.seats))
        start_search(settings, procs)
        supervisor, workers, gateway, _simulated = start_stack(
            settings, args.workers, procs, RUN_DIR, events.paid
        )
        wait_for("search_sync to index the catalog", lambda: indexed(settings), 90)
        probes = Probes(settings, gateway, events.paid, events.reserve_only).start()
        down = {"typesense": args.typesense_down, "localstripe": args.localstripe_down}
        faults = Faults(procs, servers, settings, events.paid, args.workers, down)
        schedule = Schedule(faults, keys, args.delay, args.window)
        say(
            f"on-sale: {args.fans:,} fans, {args.seats:,} seats, admitting "
            f"{args.admit_per_minute:,}/min; faults from {args.delay:.0f} s after on-sale: "
            + ", ".join(keys)
        )
        sale = chaos_sale(
            settings, args, procs, gateway, events.paid, supervisor, workers, schedule
        )
        if not schedule.finished.wait(180):
            say("chaos: the schedule is still on a fault after the on-sale's timeout")
        answers = probes.stop()
        say("balancing the ledger")
        figures = balance(settings, gateway, sale, args.claim_seconds)
        ledger = asyncio.run(read_ledger(settings.database_url, events.paid))
        sales = sorted((at, len(ids)) for _u, ids, _pi, at in ledger.bookings.values())
        attempts = [cr.Attempt(t, route, status) for t, route, status in sale["loads"]["timeline"]]
        attempts += [cr.Attempt(a.at, a.route, a.status, a.note) for a in answers]
        results = print_results(
            args, keys, schedule, procs, servers, sale, figures, sales, attempts
        )
        if args.summary:
            args.summary.write_text(json.dumps(results, indent=1, default=str))
        return 0 if all(passed for passed, _ in results["checks"]) else 1
    finally:
        procs.stop_all()
        wait_for_time_wait()


if __name__ == "__main__":
    sys.exit(main())
