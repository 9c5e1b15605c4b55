"""Scale measured, not assumed (issue 13 item 7): the join surge and the reserve bench on
the single-node setup and on the cluster setup in one run, side by side, then the CPU each
operation costs and the machines per tier that implies.

    .venv/bin/python bench/scale.py [--fans 20000] [--seats 20000] [--skip confirm,search]

1. single node: bench/surge.py and bench/reserve.py as they always run, on this machine's
   PostgreSQL, Redis and RabbitMQ (one server each);
2. cluster: the same two benches, with the same arguments, on local clusters
   (bench/chaos_cluster_servers.py): a Redis Cluster of three primaries with a replica
   each (every admission tick waits for its replica), RabbitMQ of three nodes with quorum
   queues, a pg_auto_failover formation whose standby commits synchronously. Typesense's
   cluster is stopped: neither bench uses it;
3. bench/confirm_cpu.py and bench/search.py once, single node: what a confirm and a search
   cost;
4. prints each bench's figures for both setups, the CPU per operation by component (core
   microseconds, from /proc: bench/cpu.py), and the capacity model
   (bench/scale_model.py) for --target-fans joining in a minute and --target-seats sold in
   --sale-minutes. Every bench's own output is in .run/bench/scale/<name>.log; the figures
   in bench/results/scale-<UTC time>.json.

Every core of this machine runs every process of both setups: the cluster's three nodes of
each engine share the same two cores that one server has alone, so the cluster's rates here
measure its overhead (replication, quorum writes, redirections), not its capacity. Its
capacity is in the model: cost per operation, times the operations, over the cores a tier
is given.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chaos_cluster_servers import ClusterServers  # noqa: E402
from bench.scale_model import (  # noqa: E402
    Load,
    Machine,
    add_fields,
    costs,
    from_args,
    print_model,
)
from bench.search import say  # noqa: E402
from deploy.rabbitmq_cluster import RABBITMQ_BIN  # noqa: E402

RUN_DIR = ROOT / ".run" / "bench" / "scale"
RESULTS = ROOT / "bench" / "results"
CLUSTER_DATABASE = "ticketing_scale"


def run_bench(name: str, argv: list[str], env: dict[str, str]) -> dict[str, Any] | None:
    """One bench as a child process, its output in RUN_DIR/<name>.log; its figures (its
    --summary), or None when it wrote none (it failed before its report)."""
    summary = RUN_DIR / f"{name}.json"
    summary.unlink(missing_ok=True)
    log = RUN_DIR / f"{name}.log"
    say(f"{name}: {' '.join(argv)} (output in {log.relative_to(ROOT)})")
    began = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, *argv, "--summary", str(summary)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    lines = log.read_text().splitlines()
    verdicts = [ln for ln in lines if ln.startswith(("PASS", "FAIL", "OK"))] or lines[-1:]
    said = verdicts[-1] if verdicts else "(no output)"
    say(f"{name}: exit {done.returncode} in {time.monotonic() - began:.0f} s: {said}")
    return json.loads(summary.read_text()) if summary.exists() else None


def cluster_env(servers: ClusterServers) -> dict[str, str]:
    """The benches' settings on the clusters; rabbitmqctl (the benches' own vhost) reaches
    the first RabbitMQ node with the cluster's cookie (its HOME), run directly rather than
    through /usr/sbin's wrapper, which becomes the rabbitmq user (and its cookie)."""
    node = servers.rabbitmq.nodes[0].env()
    return {
        **os.environ,
        "TICKETING_DATABASE_URL": servers.postgres.uri(CLUSTER_DATABASE),
        "TICKETING_REDIS_URL": servers.redis_url,
        "TICKETING_AMQP_URL": servers.rabbitmq.urls,
        "TICKETING_AMQP_QUEUE_TYPE": "quorum",
        "HOME": node["HOME"],
        "RABBITMQ_NODENAME": node["RABBITMQ_NODENAME"],
        "RABBITMQCTL": str(RABBITMQ_BIN / "rabbitmqctl"),
        # The benches charge the servers' CPU to the clusters' processes alone.
        "BENCH_SERVERS_ANCESTOR": str(os.getpid()),
    }


def on_clusters(surge: list[str], reserve: list[str]) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="tk-scale-"))
    servers = ClusterServers(root)
    try:
        say(f"starting the clusters in {root}")
        servers.start()
        servers.typesense.stop()  # neither bench searches: its nodes would only take CPU
        say("started in " + ", ".join(f"{k} {v:.1f} s" for k, v in servers.start_seconds.items()))
        env = cluster_env(servers)
        return {
            "surge": run_bench("surge-cluster", surge, env),
            "reserve": run_bench("reserve-cluster", reserve, env),
        }
    finally:
        servers.close()


def row(label: str, single: float | None, cluster: float | None, unit: str) -> str:
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f}"

    ratio = f"{cluster / single:.2f}x" if single and cluster is not None else "-"
    return f"{label:<44}{cell(single):>12}{cell(cluster):>12}{ratio:>9}  {unit}"


def print_side_by_side(single: dict[str, Any], cluster: dict[str, Any]) -> None:
    def get(side: dict[str, Any], bench: str, key: str, i: int | None = None) -> float | None:
        figures = side.get(bench)
        if not figures:
            return None
        value = figures[key]
        return float(value if i is None else value[i])

    print()
    print(f"{'':<44}{'single':>12}{'cluster':>12}{'ratio':>9}")
    for label, bench, key, i, unit in (
        ("hello world through the gateway", "surge", "hello", 0, "req/s"),
        ("joins through the gateway", "surge", "join", 0, "joins/s"),
        ("join p99", "surge", "join", 2, "ms"),
        ("join throughput / hello world", "surge", "join_ratio", None, ""),
        ("push lag p99 (admission -> fan)", "surge", "push_lag_ms", 1, "ms"),
        ("memory per socket", "surge", "bytes_per_socket", None, "bytes"),
        ("bare aio-pika RPC round trips", "reserve", "rpc", 0, "/s"),
        ("bare Postgres holds", "reserve", "pg", 0, "holds/s"),
        ("reserve: 201 holds in the selling window", "reserve", "holds", 0, "holds/s"),
        ("reserve p99 (every answer)", "reserve", "answers", 2, "ms"),
    ):
        print(row(label, get(single, bench, key, i), get(cluster, bench, key, i), unit))
    for side, figures in (("single", single), ("cluster", cluster)):
        failed = {b: f["failed"] for b, f in figures.items() if f and f["failed"]}
        missing = [b for b, f in figures.items() if not f]
        print(
            f"{side}: "
            + (f"missed {json.dumps(failed)}" if failed else "every target of both benches met")
            + (f"; no figures from {', '.join(missing)} (see its log)" if missing else "")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/scale.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--fans", type=int, default=20_000, help="surge fans")
    parser.add_argument("--hold", type=float, default=30, help="surge: seconds sockets are held")
    parser.add_argument("--seats", type=int, default=20_000, help="reserve seats (x 500)")
    parser.add_argument(
        "--skip", default="", help="comma-separated: single, cluster, confirm, search"
    )
    parser.add_argument("--search-events", type=int, default=20_000)
    add_fields(Load, parser)
    add_fields(Machine, parser)
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    RUN_DIR.mkdir(parents=True, exist_ok=True)
    surge = ["bench/surge.py", "--fans", str(args.fans), "--hold", str(args.hold)]
    surge += ["--wait-for-lock", "600"]
    reserve = ["bench/reserve.py", "--seats", str(args.seats), "--wait-for-lock", "600"]
    env = {**os.environ, "TICKETING_ENV": "dev"}
    single: dict[str, Any] = {}
    if "single" not in skip:
        single["surge"] = run_bench("surge-single", surge, env)
        single["reserve"] = run_bench("reserve-single", reserve, env)
    cluster = {} if "cluster" in skip else on_clusters(surge, reserve)
    extra: dict[str, Any] = {}
    if "confirm" not in skip:
        confirm = ["bench/confirm_cpu.py", "--probe", "0", "--wait-for-lock", "600"]
        extra["confirm"] = run_bench("confirm", confirm, env)
    if "search" not in skip:
        search = ["bench/search.py", "--events", str(args.search_events)]
        extra["search"] = run_bench("search", search, env)

    print_side_by_side(single, cluster)
    measured = costs(single, cluster, extra)
    load, machine = from_args(Load, args), from_args(Machine, args)
    surge = cluster.get("surge") or single.get("surge") or {}
    print_model(measured, load, machine, surge.get("bytes_per_socket"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"scale-{stamp}.json"
    figures = {"single": single, "cluster": cluster, "extra": extra, "args": vars(args)}
    out.write_text(json.dumps(figures, indent=1, default=str))
    say(f"figures in {out.relative_to(ROOT)}")
    ran = [*single.values(), *cluster.values(), *extra.values()]
    return 0 if all(ran) and not any(f.get("failed") for f in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
