"""The cluster chaos on-sale: bench/chaos.py's paid on-sale on local clusters, while a
schedule loses one node at a time (kill -9), lets the cluster carry on without it, and
starts it again to rejoin (issue 13 item 6).

    .venv/bin/python bench/chaos_cluster.py                       # 20,000 fans, 10,000 seats
    .venv/bin/python bench/chaos_cluster.py --fans 600 --seats 500 --absence 20 --window 5
    .venv/bin/python bench/chaos_cluster.py --redis sentinel --faults redis   # Sentinel's

Its own clusters on free ports, their data in a temporary directory
(bench/chaos_cluster_servers.py): RabbitMQ of three nodes (quorum queues), Typesense of
three, a pg_auto_failover formation (monitor, primary, synchronous standby), a Redis
Cluster of three primaries with a replica each (--redis sentinel: a primary, two replicas
and three sentinels, the services given the sentinels' URL; --redis single: one server, no
Redis loss). On them the stack as bench/chaos.py starts it (catalog_api,
search_sync, localstripe, booking workers and a payments worker, the waitingroom's
supervisor with its front door, the nginx gateway), its fans and its probes (their joins
on an event whose queue shares the on-sale's Redis primary). From --delay seconds after
on-sale, one node loss at a time (bench/chaos_cluster_faults.py): the Redis primary of the
event's slot (or the one the sentinels name), the RabbitMQ node leading the event's
partition queue, Typesense's leader, the PostgreSQL primary (pg_auto_failover promotes the
standby; the monitor's checks fast, or its own timeouts with --pg-timeouts default). Each
node stays away --absence seconds (at least until 5 s after its cluster took over), is
started again on its data and rejoins; then --window quiet seconds.

Printed per loss: how long its cluster took to take over, how long after the kill joins,
status and sockets, reserves, confirms, searches and views served again
(bench/chaos_cluster_report.py), the slowest join and reserve, searches and views failed or
degraded, 5xx and unanswered requests; the order check of the fans waiting at each loss; the
on-sale's ledger; PASS/FAIL against the issue's targets (joins and reserves back in < 15 s
after a Redis or RabbitMQ node, < 60 s after the PostgreSQL primary; searches and views not
interrupted by a Typesense node). Exit status 0 only when every check passes. Results in
bench/results/chaos-cluster-<UTC time>.json and .csv (the sale second by second).

--control is the run that shows the checks can fail: each service is given only the node
each fault loses (RabbitMQ's and Typesense's first, the first PostgreSQL node, with
--redis sentinel the first primary's plain redis:// URL), as a single-node setup would have
it. A Redis Cluster has no control: its client learns every node from any.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import chaos_report as cr  # noqa: E402
from bench import onsale_report as report  # noqa: E402
from bench.chaos import (  # noqa: E402
    chaos_sale,
    indexed,
    on_own_servers,
    size_for,
    stack_settings,
    start_search,
)
from bench.chaos_cluster_faults import NodeLosses  # noqa: E402
from bench.chaos_cluster_report import line_differences, with_sent  # noqa: E402
from bench.chaos_cluster_servers import ClusterServers  # noqa: E402
from bench.chaos_cluster_table import print_results  # noqa: E402
from bench.chaos_faults import ChaosProcs, Schedule  # noqa: E402
from bench.chaos_probe import Probes  # noqa: E402
from bench.onsale import balance, build_parser  # noqa: E402
from bench.onsale_setup import OnsaleEvents, create_onsale_database, start_stack  # noqa: E402
from bench.search import say, wait_for  # noqa: E402
from bench.surge import size_processes  # noqa: E402
from bench.surge_setup import metric, wait_for_time_wait  # noqa: E402
from ticketing.config import Settings  # noqa: E402
from ticketing.settings_schema import Secret, Url  # noqa: E402

RUN_DIR = ROOT / ".run" / "bench" / "chaos-cluster"
RESULTS = ROOT / "bench" / "results"
DATABASE = "ticketing_chaos"
FAULTS = list(NodeLosses.LABELS)
PROBE_EVENT_TRIES = 30  # each has one chance in three to land on the on-sale's primary
# Rough seconds from a node's start to its rejoining, to size the sale to the schedule.
REJOIN = {"redis": 3, "rabbitmq": 8, "typesense": 5, "postgres": 5}
PG_PROMOTION = {"fast": 10, "default": 55}  # from the kill, the monitor's timeouts


def build_cluster_parser() -> argparse.ArgumentParser:
    parser = build_parser("bench/chaos_cluster.py", __doc__)
    parser.set_defaults(admit_per_minute=0, timeout=0)
    parser.add_argument(
        "--faults", default="", help=f"which, in order (default: {','.join(FAULTS)})"
    )
    parser.add_argument(
        "--redis",
        choices=("cluster", "sentinel", "single"),
        default="cluster",
        help="a Redis Cluster (3 primaries, a replica each), a primary with 2 replicas and 3 "
        "sentinels, or one server (no redis fault)",
    )
    parser.add_argument(
        "--gateway-queue-join",
        choices=("on", "off"),
        default="on",
        help="TICKETING_GATEWAY_QUEUE_JOIN: off sends every join to the waitingroom",
    )
    parser.add_argument("--delay", type=float, default=20, help="on-sale to the first loss, s")
    parser.add_argument("--absence", type=float, default=30, help="seconds a node stays away")
    parser.add_argument("--window", type=float, default=15, help="quiet seconds after each")
    parser.add_argument(
        "--pg-timeouts",
        choices=("fast", "default"),
        default="fast",
        help="the pg_auto_failover monitor's health checks: fast (a promotion in ~10 s) or "
        "its own defaults (~50 s)",
    )
    parser.add_argument(
        "--order-tolerance",
        type=float,
        default=1.0,
        help="seconds by which a fan behind may be admitted before one ahead",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="the services know one node of each cluster, the one lost: the checks must fail",
    )
    parser.add_argument("--summary", type=Path, help="also write the results here (JSON)")
    parser.add_argument("--keep", action="store_true", help="keep the clusters' directory")
    return parser


def schedule_seconds(args: argparse.Namespace, keys: list[str]) -> float:
    away = {k: args.absence for k in keys}
    if "postgres" in away:
        away["postgres"] = max(args.absence, PG_PROMOTION[args.pg_timeouts] + 5)
    return float(args.delay + sum(away[k] + REJOIN[k] + args.window for k in keys))


def cluster_settings(args: argparse.Namespace, servers: ClusterServers, root: Path) -> Settings:
    """The services know every node of each cluster; in the control (--control), only the
    one each fault loses, as a single-node setup would (Redis's with Sentinel only: a
    Redis Cluster client learns every node from any)."""
    pg, rabbit, typesense = servers.postgres, servers.rabbitmq, servers.typesense
    one = args.control
    sentinel_control = one and args.redis == "sentinel"
    base = stack_settings(
        args,
        root,
        database_url=pg.nodes["node1"].url(DATABASE) if one else pg.uri(DATABASE),
        redis_url=servers.first_redis_url() if sentinel_control else servers.redis_url,
        amqp_url=rabbit.nodes[0].url() if one else rabbit.urls,
    )
    return dataclasses.replace(
        base,
        amqp_queue_type="quorum",
        gateway_queue_join=args.gateway_queue_join,
        typesense_url=typesense.urls[0] if one else typesense.url,
        typesense_api_key=Secret(typesense.api_key),
        # The catalog reads from either node (the standby while it can), as issue 13 has it.
        database_replica_urls=Url("" if one else servers.node_urls(DATABASE)),
    )


def main(argv: list[str] | None = None) -> int:
    args = size_processes(build_cluster_parser().parse_args(argv))
    default = [k for k in FAULTS if args.redis != "single" or k != "redis"]
    keys = [k.strip() for k in args.faults.split(",") if k.strip()] or default
    unknown = [k for k in keys if k not in NodeLosses.LABELS]
    if unknown:
        raise SystemExit(f"chaos: unknown faults {unknown}; known: {', '.join(FAULTS)}")
    size_for(args, schedule_seconds(args, keys))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("TICKETING_ENV", "dev")  # dev tokens, ?token= sockets
    return on_own_servers(
        args,
        RUN_DIR,
        lambda root: ClusterServers(
            root, fast_failover=args.pg_timeouts == "fast", redis_mode=args.redis
        ),
        f"clusters (Redis {args.redis}, RabbitMQ, Typesense, PostgreSQL)",
        lambda servers, root: run(args, keys, servers, cluster_settings(args, servers, root)),
    )


def run(
    args: argparse.Namespace, keys: list[str], servers: ClusterServers, settings: Settings
) -> int:
    procs = ChaosProcs()
    try:
        say(f"creating the on-sale's database: {args.seats:,} seats")
        events = asyncio.run(create_onsale_database(servers.primary_url(DATABASE), args.seats))
        start_search(settings, procs, RUN_DIR, typesense=False)
        supervisor, workers, gateway, _simulated = start_stack(
            settings, args.workers, procs, RUN_DIR, events.paid
        )
        wait_for("search_sync to index the catalog", lambda: indexed(settings), 90)
        joined = probe_event(servers, events)
        probes = Probes(settings, gateway, events.paid, joined).start()
        faults = NodeLosses(servers, settings, events.paid, args.absence, control=args.control)
        schedule = Schedule(faults, keys, args.delay, args.window)
        say(
            f"on-sale: {args.fans:,} fans, {args.seats:,} seats, admitting "
            f"{args.admit_per_minute:,}/min; nodes lost from {args.delay:.0f} s after "
            "on-sale: " + ", ".join(keys)
        )
        sale = chaos_sale(
            settings, args, procs, gateway, events.paid, supervisor, workers, schedule, RUN_DIR
        )
        if not schedule.finished.wait(300):
            say("chaos: the schedule is still on a loss after the on-sale's timeout")
        answers = probes.stop()
        unacked = unreplicated_ticks(settings)
        say("balancing the ledger")
        figures = balance(settings, gateway, sale, args.claim_seconds)
        loads = sale["loads"]
        attempts = with_sent(loads["timeline"], loads["latencies_ms"])
        attempts += [cr.Attempt(a.at, a.route, a.status, a.note, a.sent) for a in answers]
        # waitingroom/queue/store_keys.py's name of the event's line
        line = f"{settings.redis_prefix}q:{{{events.paid}}}:waiting"
        differ = line_differences(servers.members(line, events.paid), loads["fans"])
        # For reading afterwards: every fan's record (its tickets and what it heard) and
        # the queue's departures (admitted, abandoned, left) as the cluster has them.
        departed = line.removesuffix("waiting") + "departed"
        (RUN_DIR / "fans.json").write_text(json.dumps(loads["fans"]))
        (RUN_DIR / "departed.json").write_text(json.dumps(servers.scores(departed, events.paid)))
        results = print_results(
            args, keys, schedule, faults.marks, procs, servers_line(args, servers, unacked),
            sale, figures, attempts, differ,
        )  # fmt: skip
        write_results(args, {**results, "unreplicated_admission_ticks": unacked}, sale)
        return 0 if all(passed for passed, _ in results["checks"]) else 1
    finally:
        procs.stop_all()
        wait_for_time_wait()


def servers_line(args: argparse.Namespace, servers: ClusterServers, unacked: float | None) -> str:
    return (
        "clusters started in "
        + ", ".join(f"{k} {v:.1f} s" for k, v in servers.start_seconds.items())
        + f"; Redis: {args.redis}; pg_auto_failover monitor timeouts: {args.pg_timeouts}; "
        f"gateway queue join: {args.gateway_queue_join}; admitting ticks no replica "
        f"acknowledged in time: {'?' if unacked is None else f'{unacked:.0f}'}"
        + ("; CONTROL: the services know only the node each fault loses" if args.control else "")
    )


def unreplicated_ticks(settings: Settings) -> float | None:
    """waitingroom/queue/store.py's admitting ticks whose WAIT for a replica ran out (their
    admissions exposed to a failover), summed over the waitingroom's processes; None when
    one did not answer."""
    name = "ticketing_queue_unreplicated_admission_ticks_total"
    total = 0.0
    for port in {*settings.waitingroom_ports, *settings.frontdoor_ports}:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                total += metric(resp.read().decode(), name)
        except OSError:
            return None
    return total


def probe_event(servers: ClusterServers, events: OnsaleEvents) -> int:
    """A queue-enabled event in its pre-queue for the join probes, whose queue lives on
    the Redis primary of the on-sale's own (the node the redis fault kills): the
    reserve-only one if it does, else a copy of it made until one does (an event's queue is
    the slot of its id). One server or Sentinel's primary: every event's."""
    if servers.redis_cluster is None:
        return events.reserve_only
    target = servers.event_primary(events.paid)
    candidate = events.reserve_only
    with psycopg.connect(servers.postgres.uri(DATABASE), autocommit=True) as conn:
        for _ in range(PROBE_EVENT_TRIES):
            if servers.event_primary(candidate) is target:
                return candidate
            row = conn.execute(
                """INSERT INTO events (name, starts_at, venue_id, performer_id, queue_enabled,
                                       currency, on_sale_at)
                   SELECT 'Join probes', starts_at, venue_id, performer_id, true, currency,
                          on_sale_at
                   FROM events WHERE id = %s RETURNING id""",
                (events.reserve_only,),
            ).fetchone()
            assert row is not None
            candidate = row[0]
    raise SystemExit("chaos: no event of ours has its queue on the on-sale's Redis primary")


def write_results(args: argparse.Namespace, results: dict[str, Any], sale: dict[str, Any]) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"chaos-cluster-{stamp}.json"
    text = json.dumps({"args": vars(args), **results}, indent=1, default=str)
    path.write_text(text)
    if args.summary:
        args.summary.write_text(text)
    loads = sale["loads"]
    rows = report.series(sale["samples"], loads["fans"], loads["answers_409"], sale["on_sale_at"])
    report.write_csv(path.with_suffix(".csv"), {"chaos-cluster": rows})
    print(f"results: {path.relative_to(ROOT)}, {path.with_suffix('.csv').relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
