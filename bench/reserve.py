"""Benchmark of POST /booking/reserve on one hot event: 20,000 seats, 2x oversubscribed,
several booking workers, next to a bare aio-pika request/reply loop and a bare Postgres hold
loop measured in the same run.

    .venv/bin/python bench/reserve.py [--seats 20000] [--workers 3] [--waitingrooms 2]
                                      [--concurrency 128] [--profile SECONDS]

What it does, all on 127.0.0.1 and all cleaned up at the end:

1. recreates its own database (``ticketing_bench_reserve`` next to TICKETING_DATABASE_URL's),
   migrated, with one 20,000-seat venue and three events of it (tickets COPYed, no queue):
   the hot event, a copy for the Postgres baseline, and a warm-up event;
2. creates its own RabbitMQ vhost (deleted at the end) and uses its own Redis prefix;
3. baseline (a): --workers echo consumers and --rpc-clients concurrent callers doing
   persistent, confirmed request/reply round trips for --baseline-seconds;
4. baseline (b): --pg-connections connections holding 1-4 seats per statement on the copy
   event until it is sold out;
5. starts --workers ``python -m booking_worker`` on the partition queues (plus one for the
   payments stage alone, as make run does) and --waitingrooms ``python -m waitingroom``
   (each on its own port) behind the nginx gateway (deploy/nginx.conf.template, its
   waitingroom upstream set to those ports);
6. ``bench/reserve_load.py`` warms up on the warm-up event, then wrk (bench/reserve_wrk.lua)
   posts, through the gateway, the reserves of distinct fans asking 1-4 best-available seats
   each until the asks add up to --oversubscription times the seats, --concurrency in
   flight, closed loop;
7. checks from the database and the answers that nothing was oversold, prints the table and
   PASS/FAIL against the targets (>= 1,000 holds/s, p99 < 250 ms, zero oversell, every
   answer a 201 or a 409); exit status 0 on PASS, 1 on FAIL.

Holds/s is the number of 201s over the selling window: from the first request to the
commit of the last hold answered 201 (once the event is sold out only 409s are left to give;
those count in the latency, which wrk measures over every answer).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu import clock_ticks, pids_named  # noqa: E402
from bench.reserve_baselines import RPC_QUEUE, pg_loop, rpc_loop  # noqa: E402
from bench.reserve_load import Summary  # noqa: E402
from bench.reserve_setup import (  # noqa: E402
    Inventory,
    create_bench_database,
    create_vhost,
    delete_vhost,
    oversell_problems,
    read_inventory,
    sync_redis,
    wait_for_lock,
    with_vhost,
)
from bench.search import free_port, http_get, say, service_env, wait_for  # noqa: E402
from deploy.gateway import command as gateway_command  # noqa: E402
from deploy.render_nginx import render, upstream_servers, variables  # noqa: E402
from ticketing import amqp_connect  # noqa: E402
from ticketing.config import Settings  # noqa: E402
from ticketing.messages import BOOKING_QUEUE_PREFIX, booking_routing_key  # noqa: E402

RUN_DIR = ROOT / ".run" / "bench" / "reserve"
TARGET_HOLDS_PER_SECOND = 1000
TARGET_P99_MS = 250
VHOST = "ticketing_bench_reserve"
REDIS_PREFIX = "tkbench-reserve:"


class ProcessGroups:
    """Every process the bench starts, each in its own process group, so that stopping it
    (TERM, then KILL) also stops anything it started; in reverse order."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, argv: list[str], env: dict[str, str], log: Path, *, pipe: bool = False
    ) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=ROOT,
                stdin=subprocess.PIPE if pipe else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe else out,
                stderr=out,
                start_new_session=True,
            )
        self.started.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.started:
            if proc.poll() is not None and not name.startswith(("load", "py-spy")):
                raise SystemExit(f"bench: {name} exited with {proc.returncode}; see {RUN_DIR}")

    def stop(self, procs: list[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.started = [(n, p) for n, p in self.started if p not in procs]

    def stop_all(self) -> None:
        self.stop([proc for _, proc in reversed(self.started)])


def bench_settings(base: Settings, vhost: str) -> Settings:
    return dataclasses.replace(
        base,
        env="dev",  # dev tokens; the load generator mints them with the same secret
        database_url=urlunsplit(urlsplit(base.database_url)._replace(path="/" + VHOST)),
        amqp_url=with_vhost(base.amqp_url, vhost),
        redis_prefix=REDIS_PREFIX,
        host="127.0.0.1",
        # One load generator is one client: it must not be measured against the rate limit.
        rate_limit_per_minute=100_000_000,
        rate_limit_burst=1_000_000,
        gateway_metrics_port=free_port(),
    )


def make_fans(seats: int, oversubscription: float, seed: int) -> list[tuple[str, int]]:
    """Distinct fans asking 1-4 seats each until the asks reach ``oversubscription`` x seats."""
    rng = random.Random(seed)
    fans: list[tuple[str, int]] = []
    asked = 0
    while asked < oversubscription * seats:
        quantity = rng.randint(1, 4)
        fans.append((f"fan-{len(fans):06d}", quantity))
        asked += quantity
    return fans


async def wait_for_consumers(amqp_url: str, queue: str, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    connection = await amqp_connect.connect(amqp_url, 10)  # one node, or a cluster's any
    async with connection:
        while True:
            consumers = 0
            try:
                channel = await connection.channel()
                declared = await channel.declare_queue(queue, passive=True)
                consumers = declared.declaration_result.consumer_count
                await channel.close()
            except aio_pika.exceptions.AMQPError:
                pass  # not declared yet
            if consumers >= count:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: {queue} has {consumers} consumers, not {count}")
            await asyncio.sleep(0.2)


def run_rpc_baseline(settings: Settings, args: argparse.Namespace, procs: ProcessGroups) -> Summary:
    first_node = settings.amqp_url.split()[0]  # a bare round trip: one node, a classic queue
    echoes = [
        procs.start(
            f"echo-{i}",
            [sys.executable, "bench/reserve_baselines.py", "echo", first_node, RPC_QUEUE],
            dict(os.environ),
            RUN_DIR / f"echo_{i}.log",
        )
        for i in range(args.workers)
    ]
    try:
        asyncio.run(wait_for_consumers(settings.amqp_url, RPC_QUEUE, args.workers, 30))
        return asyncio.run(rpc_loop(first_node, RPC_QUEUE, args.rpc_clients, args.baseline_seconds))
    finally:
        procs.stop(echoes)


def start_booking_workers(
    settings: Settings,
    count: int,
    procs: ProcessGroups,
    run_dir: Path,
    *,
    payments_apart: bool = True,
) -> list[subprocess.Popen[bytes]]:
    """``count`` ``python -m booking_worker`` on the partition queues, each with its own
    metrics port, and, as make run starts them, one more for the payments stage alone
    (last in the list); ``payments_apart=False``: ``count`` workers each running both."""
    stages = "commands" if payments_apart else "commands,payments"
    workers = [
        procs.start(
            f"booking_worker-{i}",
            [sys.executable, "-m", "booking_worker"],
            service_env(
                dataclasses.replace(
                    settings,
                    booking_worker_metrics_port=free_port(),
                    # as make run starts them: each first in line for its share of partitions
                    booking_worker_slot=f"{i}/{count}",
                    booking_stages=stages,
                )
            ),
            run_dir / f"booking_worker_{i}.log",
        )
        for i in range(count)
    ]
    if payments_apart:
        workers.append(
            procs.start(
                "booking_payments",
                [sys.executable, "-m", "booking_worker"],
                service_env(
                    dataclasses.replace(
                        settings,
                        booking_worker_metrics_port=free_port(),
                        booking_worker_slot="",
                        booking_stages="payments",
                    )
                ),
                run_dir / "booking_payments.log",
            )
        )
    return workers


def start_nginx(
    config: str, settings: Settings, procs: ProcessGroups, run_dir: Path
) -> subprocess.Popen[bytes]:
    """The gateway (``python -m deploy.gateway``) on ``config``, written to
    run_dir/nginx.conf, its prefix and logs in run_dir/nginx."""
    prefix = run_dir / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = run_dir / "nginx.conf"
    conf.write_text(config)
    return procs.start(
        "nginx", gateway_command(conf, prefix), service_env(settings), run_dir / "nginx.log"
    )


def start_services(
    settings: Settings, args: argparse.Namespace, procs: ProcessGroups, hot_event: int
) -> tuple[list[int], list[subprocess.Popen[bytes]], list[subprocess.Popen[bytes]]]:
    workers = start_booking_workers(settings, args.workers, procs, RUN_DIR)
    ports = [free_port() for _ in range(args.waitingrooms)]
    rooms = [
        procs.start(
            f"waitingroom:{port}",
            [sys.executable, "-m", "waitingroom"],
            service_env(dataclasses.replace(settings, waitingroom_port=port)),
            RUN_DIR / f"waitingroom_{port}.log",
        )
        for port in ports
    ]
    for port in ports:
        wait_for(
            f"waitingroom on {port}",
            lambda p=port: http_get(f"http://127.0.0.1:{p}/healthz")[0] == 200,
            60,
        )
    queue = BOOKING_QUEUE_PREFIX + booking_routing_key(hot_event, settings.booking_partitions)
    asyncio.run(wait_for_consumers(settings.amqp_url, queue, args.workers, 60))
    procs.check_alive()
    return ports, workers, rooms


def start_gateway(settings: Settings, procs: ProcessGroups, ports: list[int]) -> str:
    """nginx with the gateway's own config, its waitingroom and booking upstreams set to
    ``ports``."""
    values = variables(settings)
    values["GATEWAY_LISTEN"] = f"127.0.0.1:{free_port()}"
    values["GATEWAY_WAITINGROOM_SERVERS"] = upstream_servers("127.0.0.1", ports)
    # The booking routes have an upstream of their own (the front door, in make run); here
    # the same waitingroom processes serve them, as one process serving both rooms may.
    values["GATEWAY_BOOKING_SERVERS"] = upstream_servers("127.0.0.1", ports)
    values["GATEWAY_ACCESS_LOG"] = "logs/access.log"
    start_nginx(render(values), settings, procs, RUN_DIR)
    base = "http://" + values["GATEWAY_LISTEN"]
    # /healthz is the catalog's (not running here); a booking route without a token is
    # the waitingroom's 401.
    wait_for("the gateway", lambda: http_get(base + "/booking/1")[0] == 401, 30)
    return base


def start_load(
    settings: Settings,
    args: argparse.Namespace,
    procs: ProcessGroups,
    base: str,
    events: tuple[int, int],
    fans: list[tuple[str, int]],
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start the load process and wait until it has warmed up and is ready to fire."""
    spec = {
        "base": base,
        "event_id": events[0],
        "warmup_event_id": events[1],
        "fans": fans,
        "warmup_fans": [(f"warm-{j}", 2) for j in range(args.warmup)],
        "concurrency": args.concurrency,
        "threads": 1,  # one wrk thread sends thousands of requests a second on a sliver of CPU
        "request_timeout": 30,
        "seconds": args.timeout,
    }
    spec_path = RUN_DIR / "load.spec.json"
    spec_path.write_text(json.dumps(spec))
    result_path = RUN_DIR / "load.result.json"
    result_path.unlink(missing_ok=True)
    proc = procs.start(
        "load",
        [sys.executable, "bench/reserve_load.py", str(spec_path), str(result_path)],
        service_env(settings),
        RUN_DIR / "load.log",
        pipe=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("ready"):
        raise SystemExit(f"bench: the load process did not warm up; see {RUN_DIR}")
    say(f"load process warmed up: {line.strip()}")
    return proc, result_path


def profile(pids: dict[str, int], seconds: int, procs: ProcessGroups) -> list[Path]:
    spy = ROOT / ".venv" / "bin" / "py-spy"
    outputs = []
    for name, pid in pids.items():
        out = RUN_DIR / f"profile_{name}.txt"
        argv = [str(spy), "record", "--nonblocking", "-r", "100", "-d", str(seconds)]
        argv += ["-f", "raw", "-o", str(out), "-p", str(pid)]
        procs.start(f"py-spy-{name}", argv, dict(os.environ), RUN_DIR / f"py-spy_{name}.log")
        outputs.append(out)
    return outputs


def judge(
    inv: Inventory, fans: list[tuple[str, int]], result: dict
) -> tuple[dict[str, list[int]], set[str], int, list[str], float | None]:
    """The fans' answers read against the database: (fan -> seats of their 201, fans who
    may hold seats without having seen a 201, holds of another size than asked, problems,
    commit time of the last hold answered 201). wrk does not say which fan an answer went
    to; a 201's hold id does, through the hold row."""
    asked = dict(fans)
    granted: dict[str, list[int]] = {}
    problems = []
    wrong_size = differ = unknown = 0
    last_commit = None
    for body in result["ok_bodies"]:
        row = inv.by_id.get(body["hold_id"])
        if row is None:
            unknown += 1
            continue
        user, ids, at = row
        if user in granted:
            problems.append(f"fan {user} answered 201 twice")
        granted[user] = sorted(body["ticket_ids"])
        differ += granted[user] != ids
        wrong_size += len(ids) != asked.get(user)
        last_commit = at if last_commit is None else max(last_commit, at)
    if unknown:
        problems.append(f"{unknown} 201 answer(s) name no live hold in the database")
    if differ:
        problems.append(f"{differ} 201 answer(s) list other seats than their hold")
    # Fans whose answer was not a 201 or a 409 (a 503 after the front door stopped waiting,
    # or none in time) may hold seats: the hold is theirs when they retry with their key.
    others = sum(n for s, n in result["statuses"].items() if int(s) not in (201, 409))
    unclear = {u for u, _ in inv.holds} - granted.keys()
    if len(unclear) > others + result["unsent"]:
        unclear = set()  # more than those answers explain: oversell_problems reports them
    return granted, unclear, wrong_size, problems, last_commit


def report(
    args: argparse.Namespace,
    fans: list[tuple[str, int]],
    rpc: Summary,
    pg: Summary,
    e2e: dict,
    selling: float,
    findings: list[str],
    problems: list[str],
    cpu: dict[str, float],
) -> bool:
    wall = e2e["finished_at"] - e2e["started_at"]
    statuses = {int(s): n for s, n in e2e["statuses"].items()}
    ok = statuses.get(201, 0)
    wrk = e2e["wrk"]
    p50, p99 = wrk["p50_us"] / 1000, wrk["p99_us"] / 1000
    holds = Summary(ok, selling, p50, p99)
    answers = Summary(sum(statuses.values()), wall, p50, p99)
    unexpected = {s: n for s, n in statuses.items() if s not in (201, 409)}
    print()
    print(
        f"reserve: {args.seats:,} seats, {len(fans):,} fans asking {sum(q for _, q in fans):,}"
        f" seats (1-4 each), {args.concurrency} in flight (wrk through the nginx gateway);"
        f" {args.workers} booking_worker, {args.waitingrooms} waitingroom"
    )
    print(f"{'side':<44}{'per s':>10}{'p50 ms':>10}{'p99 ms':>10}{'count':>9}")
    rows = (
        (f"bare aio-pika RPC, {args.rpc_clients} callers (round trips)", rpc),
        (f"bare Postgres hold, {args.pg_connections} connections (holds)", pg),
        ("end to end: 201 holds in the selling window", holds),
        ("end to end: every answer (latency: wrk)", answers),
    )
    for name, s in rows:
        print(f"{name:<44}{s.rate:>10.0f}{s.p50_ms:>10.1f}{s.p99_ms:>10.1f}{s.count:>9,}")
    line = ", ".join(f"{s}: {n:,}" for s, n in sorted(statuses.items()))
    if e2e["unsent"]:
        line += f", not answered within {args.timeout:.0f} s: {e2e['unsent']:,}"
    print(f"statuses: {line}; selling window {selling:.1f} s, whole run {wall:.1f} s")
    print(f"  wrk: p90 {wrk['p90_us'] / 1000:.1f} ms, max {wrk['max_us'] / 1000:.1f} ms")
    for status, body in e2e["samples"].items():
        print(f"  e.g. {status}: {body}")
    verdict = "FAILED" if problems else "no oversell"
    print(f"oversell check: {verdict}" + "".join(f"\n  {line}" for line in findings[:-1]))
    print(findings[-1])
    checks = [
        (holds.rate >= TARGET_HOLDS_PER_SECOND, f"holds/s >= {TARGET_HOLDS_PER_SECOND}"),
        (answers.p99_ms < TARGET_P99_MS, f"p99 < {TARGET_P99_MS} ms"),
        (not problems, "zero oversell"),
        (not unexpected and not e2e["unsent"], "every fan answered 201 or 409"),
    ]
    failed = [name for passed, name in checks if not passed]
    print("PASS" if not failed else "FAIL: missed " + ", ".join(failed))
    if args.summary:
        figures = {
            "rpc": [rpc.rate, rpc.p50_ms, rpc.p99_ms, rpc.count],
            "pg": [pg.rate, pg.p50_ms, pg.p99_ms, pg.count],
            "holds": [holds.rate, holds.p50_ms, holds.p99_ms, holds.count],
            "answers": [answers.rate, answers.p50_ms, answers.p99_ms, answers.count],
            "cpu": cpu,
            "failed": failed,
        }
        args.summary.write_text(json.dumps(figures, indent=1))
    return not failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/reserve.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seats", type=int, default=20_000, help="a multiple of 500")
    parser.add_argument("--oversubscription", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=3, help="booking_worker processes")
    parser.add_argument("--waitingrooms", type=int, default=2, help="waitingroom processes")
    parser.add_argument("--concurrency", type=int, default=128, help="reserves in flight")
    parser.add_argument("--warmup", type=int, default=400, help="reserves on the warm-up event")
    parser.add_argument("--rpc-clients", type=int, default=64)
    parser.add_argument("--pg-connections", type=int, default=8)
    parser.add_argument("--baseline-seconds", type=float, default=8)
    parser.add_argument(
        "--timeout", type=float, default=90, help="no reserve starts after this many seconds"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--wait-for-lock", type=float, default=0, metavar="SECONDS", help="for a run under way"
    )
    parser.add_argument("--summary", type=Path, help="also write the figures here (JSON)")
    parser.add_argument(
        "--profile",
        type=int,
        metavar="SECONDS",
        default=0,
        help=f"py-spy record a worker and a waitingroom for SECONDS (raw stacks in {RUN_DIR})",
    )
    parser.add_argument(
        "--what-if-sql",
        default="",
        metavar="SQL",
        help="run SQL on the bench database after migrating, e.g. to try an index",
    )
    args = parser.parse_args(argv)

    # A TERM (a CI timeout) unwinds like Ctrl-C, so the finally below still stops everything.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("TICKETING_ENV", "dev")  # a bench runs a development stack
    settings = bench_settings(Settings.from_env(), VHOST)
    with wait_for_lock(settings.database_url, args.wait_for_lock):
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        for stale in RUN_DIR.iterdir():  # the previous run's logs, specs and profiles
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        return run(args, settings)


def run(args: argparse.Namespace, settings: Settings) -> int:
    user = urlsplit(settings.amqp_url).username or "guest"
    procs = ProcessGroups()
    try:
        say(f"recreating {VHOST} with 3 events of {args.seats:,} seats")
        events = asyncio.run(
            create_bench_database(settings.database_url, args.seats, args.what_if_sql)
        )
        if args.what_if_sql:
            say(f"what if: {args.what_if_sql}")
        create_vhost(VHOST, user)
        say(f"bare aio-pika RPC: {args.rpc_clients} callers for {args.baseline_seconds:.0f}s")
        rpc = run_rpc_baseline(settings, args, procs)
        say(f"  {rpc.rate:.0f}/s, p50 {rpc.p50_ms:.1f} ms, p99 {rpc.p99_ms:.1f} ms")
        say(f"bare Postgres hold: {args.pg_connections} connections until sold out")
        pg, _ = asyncio.run(
            pg_loop(settings.database_url, events.baseline, args.pg_connections, 30)
        )
        say(f"  {pg.rate:.0f} holds/s, p50 {pg.p50_ms:.1f} ms, p99 {pg.p99_ms:.1f} ms")
        say(f"starting {args.workers} booking_worker and {args.waitingrooms} waitingroom")
        ports, workers, rooms = start_services(settings, args, procs, events.hot)
        base = start_gateway(settings, procs, ports)
        fans = make_fans(args.seats, args.oversubscription, args.seed)
        load, result_path = start_load(
            settings, args, procs, base, (events.hot, events.warmup), fans
        )
        groups = {
            "booking_worker": [p.pid for p in workers],
            "waitingroom": [p.pid for p in rooms],
            "nginx": pids_named("nginx"),
            "postgres": pids_named("postgres"),
            "rabbitmq": pids_named("beam.smp"),
            "redis": pids_named("redis-server"),
        }
        before = {name: clock_ticks(pids) for name, pids in groups.items()}
        if args.profile:
            profile({"worker": workers[0].pid, "waitingroom": rooms[0].pid}, args.profile, procs)
        # Other work on the machine shares the two cores: say how busy it was.
        load_average = os.getloadavg()[0]
        say(f"{len(fans):,} fans reserving, {args.concurrency} in flight")
        assert load.stdin is not None
        load.stdin.write(b"go\n")
        load.stdin.flush()
        load.wait(timeout=args.timeout + 120)
        groups["postgres"] = pids_named("postgres")
        cpu = {name: clock_ticks(pids) - before[name] for name, pids in groups.items()}
        procs.check_alive()
        if load.returncode:
            raise SystemExit(f"bench: the load process failed; see {RUN_DIR}")
        e2e = json.loads(result_path.read_text())
        # Token minting and the warm-up included: an upper bound of the load's share.
        cpu["load: wrk + driver (incl. setup)"] = e2e["cpu_seconds"]
        inventory = asyncio.run(
            read_inventory(settings.database_url, events.hot, settings.max_tickets_per_user)
        )
        granted, unclear, wrong_size, answer_problems, last_commit = judge(inventory, fans, e2e)
        problems, notes = oversell_problems(inventory, args.seats, granted, unclear, wrong_size)
        problems = answer_problems + problems
        selling = (last_commit - e2e["started_at"]) if last_commit else 0.0
        cpu_line = ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
        notes.append(f"CPU seconds: {cpu_line}; load average at the start {load_average:.1f}")
        return (
            0 if report(args, fans, rpc, pg, e2e, selling, problems + notes, problems, cpu) else 1
        )
    except subprocess.TimeoutExpired:
        say(f"the load did not finish within {args.timeout:.0f}s")
        return 1
    finally:
        procs.stop_all()
        delete_vhost(VHOST)
        clear_redis(settings)


def clear_redis(settings: Settings) -> None:
    with sync_redis(settings.redis_url) as redis:
        keys = list(redis.scan_iter(match=settings.redis_prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            redis.delete(*keys[start : start + 1000])


if __name__ == "__main__":
    sys.exit(main())
