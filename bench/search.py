"""Benchmark of /search on a 100,000-event catalog: the API through the gateway against the
same queries sent straight to Typesense, in one run, with the same load.

    .venv/bin/python bench/search.py [--events 100000] [--duration 20] [--connections 16]

What it does, all on 127.0.0.1 and all cleaned up at the end:

1. ensures the bench database (``ticketing_bench`` next to TICKETING_DATABASE_URL's, or
   --database-url) is migrated and holds the demo catalog (``python -m ticketing.demo``);
2. starts its own Typesense (data under .run/bench/typesense) and runs search_sync's
   reindex into it;
3. starts --api-processes ``python -m catalog_api`` behind nginx, with the gateway config
   rendered by ``deploy.render_nginx`` (its catalog upstream widened to every process);
4. checks that every query answers 200 on both sides with the same ``found``;
5. runs wrk (bench/search_rotate.lua rotates through a fixed list of realistic queries:
   typos, prefixes, cities, a city typo, days and date ranges) against Typesense's search
   endpoint and against /search through the gateway, with the same threads, connections
   and duration, after a short warm-up of each;
6. prints p50, p99 and requests/s of both, the API's added p99, and PASS/FAIL against the
   target: API p99 <= 1.3 x Typesense p99 (exit status 0 on PASS, 1 on FAIL).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu import clock_ticks, pids_named  # noqa: E402
from bench.search_queries import Query, build_queries  # noqa: E402
from deploy.gateway import command as gateway_command  # noqa: E402
from deploy.render_nginx import render, variables  # noqa: E402
from search_sync.worker import run_reindex  # noqa: E402
from ticketing.config import VARIABLES, Settings  # noqa: E402
from ticketing.db import migrate  # noqa: E402
from ticketing.typesense_server import binary_path  # noqa: E402
from ticketing.typesense_server import command as typesense_command  # noqa: E402

RUN_DIR = ROOT / ".run" / "bench"
LUA = ROOT / "bench" / "search_rotate.lua"
TARGET_RATIO = 1.3
API_KEY = "bench-typesense-key"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


def bench_database_url(base: str) -> str:
    return urlunsplit(urlsplit(base)._replace(path="/ticketing_bench"))


def service_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    for name in VARIABLES:
        env[name] = str(getattr(settings, name.removeprefix("TICKETING_").lower()))
    return env


def http_get(
    url: str, headers: dict[str, str] | None = None, timeout: float = 5
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def wait_for(what: str, probe: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.2)
    raise SystemExit(f"bench: {what} did not come up within {timeout:.0f}s")


class Processes:
    """Every process the bench starts, stopped (TERM, then KILL) in reverse order."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        self.started.append((name, proc))

    def check_alive(self) -> None:
        for name, proc in self.started:
            if proc.poll() is not None:
                raise SystemExit(f"bench: {name} exited with {proc.returncode}; see {RUN_DIR}")

    def stop_all(self) -> None:
        for _, proc in reversed(self.started):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in reversed(self.started):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.started.clear()


def ensure_catalog(settings: Settings, events: int) -> int:
    migrate.create_database(settings.database_url)
    migrate.upgrade(settings.database_url)
    say(f"loading the demo catalog into {urlsplit(settings.database_url).path[1:]} if empty")
    subprocess.run(
        [sys.executable, "-m", "ticketing.demo", "--events", str(events)],
        env=service_env(settings),
        cwd=ROOT,
        check=True,
    )
    import psycopg

    with psycopg.connect(settings.database_url) as conn:
        count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    if count < events:
        say(f"warning: the bench database holds {count:,} events, fewer than {events:,}")
    return count


def start_typesense(settings: Settings, procs: Processes) -> None:
    data_dir = Path(settings.typesense_data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)  # the reindex builds it from scratch
    data_dir.mkdir(parents=True)
    env = {**os.environ, "GLOG_minloglevel": "1"}
    procs.start(
        "typesense", typesense_command(settings, binary_path()), env, RUN_DIR / "typesense.log"
    )
    wait_for(
        "Typesense", lambda: b'"ok":true' in http_get(settings.typesense_url + "/health")[1], 60
    )


def start_gateway(settings: Settings, api_ports: list[int], procs: Processes) -> None:
    for port in api_ports:
        procs.start(
            f"catalog_api:{port}",
            [sys.executable, "-m", "catalog_api"],
            service_env(dataclasses.replace(settings, catalog_port=port)),
            RUN_DIR / f"catalog_api_{port}.log",
        )
    values = variables(settings)
    single = f"server {values['GATEWAY_CATALOG_UPSTREAM']};"
    config = render(values)
    assert single in config, "deploy/nginx.conf.template no longer has one catalog server line"
    config = config.replace(
        single, "\n        ".join(f"server 127.0.0.1:{p};" for p in api_ports), 1
    )
    prefix = RUN_DIR / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = RUN_DIR / "nginx.conf"
    conf.write_text(config)
    procs.start(
        "nginx", gateway_command(conf, prefix), service_env(settings), RUN_DIR / "nginx.log"
    )
    for port in api_ports:
        wait_for(
            f"catalog_api on {port}",
            lambda p=port: http_get(f"http://127.0.0.1:{p}/healthz")[0] == 200,
            60,
        )
    gateway = f"http://127.0.0.1:{settings.gateway_port}"
    wait_for("the gateway", lambda: http_get(gateway + "/healthz")[0] == 200, 30)


def check_same_answers(settings: Settings, queries: list[Query]) -> None:
    """Both sides answer every query, and find the same events: the comparison is fair."""
    gateway = f"http://127.0.0.1:{settings.gateway_port}"
    for query in queries:
        status, body = http_get(gateway + query.api_path)
        if status != 200:
            raise SystemExit(f"bench: {query.api_path} answered {status}: {body[:300]!r}")
        api_found = json.loads(body)["found"]
        status, body = http_get(
            settings.typesense_url + query.typesense_path,
            {"X-TYPESENSE-API-KEY": settings.typesense_api_key},
        )
        if status != 200:
            raise SystemExit(f"bench: Typesense {query.typesense_path} answered {status}")
        direct_found = json.loads(body)["found"]
        if api_found != direct_found:
            raise SystemExit(f"bench: {query.api_path} found {api_found}, Typesense {direct_found}")
    say(f"{len(queries)} queries answer the same on both sides")


def run_wrk(
    url: str, paths_file: Path, args: argparse.Namespace, seconds: int, api_key: str = ""
) -> dict[str, float]:
    argv = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        url,
        "--",
        str(paths_file),
        api_key,
    ]
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_JSON "))
    return json.loads(line.removeprefix("WRK_JSON "))


def report(direct: dict[str, float], api: dict[str, float], args: argparse.Namespace) -> bool:
    print()
    print(
        f"/search, {args.connections} connections, {args.threads} wrk thread(s), "
        f"{args.duration} s per side, {args.api_processes} catalog_api process(es)"
    )
    print(f"{'side':<28}{'req/s':>10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, r in (("Typesense direct", direct), ("API via nginx gateway", api)):
        errors = int(r["non_2xx"] + r["socket_errors"])
        print(
            f"{name:<28}{r['rps']:>10.0f}{r['p50_ms']:>10.2f}{r['p90_ms']:>10.2f}"
            f"{r['p99_ms']:>10.2f}{errors:>8}"
        )
    added = (api["p99_ms"] / direct["p99_ms"] - 1) * 100
    errors = api["non_2xx"] + api["socket_errors"] + direct["non_2xx"] + direct["socket_errors"]
    passed = api["p99_ms"] <= TARGET_RATIO * direct["p99_ms"] and errors == 0
    print(f"API added p99: {added:+.1f}% (target: at most {(TARGET_RATIO - 1) * 100:.0f}%)")
    print(("PASS" if passed else "FAIL") + (f" ({int(errors)} errors)" if errors else ""))
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/search.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--database-url", help="default: ticketing_bench next to TICKETING_DATABASE_URL's database"
    )
    parser.add_argument("--duration", type=int, default=20, help="seconds per side")
    parser.add_argument("--warmup", type=int, default=3, help="seconds per side, not counted")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--summary", type=Path, help="also write the figures here (JSON)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--api-processes", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = parser.parse_args(argv)

    os.environ.setdefault("TICKETING_ENV", "dev")  # a bench runs a development stack
    base = Settings.from_env()
    settings = dataclasses.replace(
        base,
        env="test",
        database_url=args.database_url or bench_database_url(base.database_url),
        redis_prefix="tkbench:",
        typesense_port=(ts_port := free_port()),
        typesense_url=f"http://127.0.0.1:{ts_port}",
        typesense_api_key=API_KEY,
        typesense_collection="events",
        typesense_data_dir=str(RUN_DIR / "typesense"),
        host="127.0.0.1",
        gateway_port=free_port(),
        gateway_metrics_port=free_port(),
        catalog_port=free_port(),
        # One load generator is one client: it must not be measured against the rate limit.
        rate_limit_per_minute=100_000_000,
        rate_limit_burst=1_000_000,
    )
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    procs = Processes()
    try:
        count = ensure_catalog(settings, args.events)
        start_typesense(settings, procs)
        started = time.monotonic()
        result = asyncio.run(run_reindex(settings))
        say(
            f"reindexed {result.indexed:,} of {count:,} events in {time.monotonic() - started:.1f}s"
        )
        api_ports = [settings.catalog_port] + [free_port() for _ in range(args.api_processes - 1)]
        start_gateway(settings, api_ports, procs)

        queries = build_queries(settings)
        check_same_answers(settings, queries)
        api_paths = RUN_DIR / "api_paths.txt"
        api_paths.write_text("".join(q.api_path + "\n" for q in queries))
        direct_paths = RUN_DIR / "typesense_paths.txt"
        direct_paths.write_text("".join(q.typesense_path + "\n" for q in queries))
        gateway = f"http://127.0.0.1:{settings.gateway_port}"

        say(f"warming up ({args.warmup}s per side)")
        run_wrk(settings.typesense_url, direct_paths, args, args.warmup, API_KEY)
        run_wrk(gateway, api_paths, args, args.warmup)
        procs.check_alive()
        say(f"measuring Typesense direct for {args.duration}s")
        direct = run_wrk(settings.typesense_url, direct_paths, args, args.duration, API_KEY)
        say(f"measuring /search through the gateway for {args.duration}s")
        groups = {
            "catalog_api": [p.pid for n, p in procs.started if n.startswith("catalog_api:")],
            "typesense": [p.pid for n, p in procs.started if n == "typesense"],
            "nginx": pids_named("nginx"),  # the master and its workers
        }
        cpu_before = {k: clock_ticks(v) for k, v in groups.items()}
        api = run_wrk(gateway, api_paths, args, args.duration)
        cpu = {k: clock_ticks(v) - cpu_before[k] for k, v in groups.items()}
        procs.check_alive()
        searches = api["rps"] * args.duration
        per = {k: v * 1e6 / searches for k, v in cpu.items()} if searches else {}
        print(
            "CPU us per search through the gateway, by component: "
            + ", ".join(f"{k} {v:.0f}" for k, v in per.items())
            + f"; all {sum(per.values()):.0f}"
        )
        if args.summary:
            figures = {"direct": direct, "api": api, "cpu": cpu, "searches": searches}
            args.summary.write_text(json.dumps(figures, indent=1))
        return 0 if report(direct, api, args) else 1
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
