"""Surge benchmark of the waiting room: 20,000 fans join one event's queue within a minute
and hold their websockets while admission runs, through nginx, next to a hello-world route
through the same gateway measured in the same run.

    .venv/bin/python bench/surge.py [--fans 20000] [--waitingrooms 2] [--load-processes 3]
                                    [--concurrency 128] [--admit-per-minute 3000] [--hold 30]

What it does, all on 127.0.0.1 and all stopped and cleaned up at the end:

1. takes the benchmarks' run lock (the one bench/reserve.py takes: one run at a time per
   Postgres server), recreates its own database (``ticketing_bench_surge``, bench/reserve.py's
   shape) with its hot event behind a waiting room and on sale, its own RabbitMQ vhost and
   Redis prefix (``tkbench-surge:``);
2. starts ``python -m waitingroom --supervise`` with --waitingrooms processes (what make run
   starts: each holds about 15,000 sockets under this machine's 20,000 open files), as many
   hello-world processes (bench/surge_hello.py), and nginx from deploy/nginx.conf.template
   as make run renders it and starts it (python -m deploy.gateway: the gateway answers plain
   joins itself, deploy/lua/queue_join.lua), plus a route to the hello-world upstream;
3. sets the queue (PATCH /admin/queues/{id}, through the gateway): --admit-per-minute,
   max_active out of the way, not paused;
4. starts --load-processes bench/surge_load.py, the fans split between them, which warm
   up unmeasured (hello world, and 1,000 joins by fans of their own who then leave), and runs:
   hello-world: GET /bench/hello for --hello-seconds, closed loop, --concurrency in flight;
   joins: every fan POSTs /queue/{id}/join (closed loop, the same concurrency), the queue
   paused so that the joins are measured on their own; hello world again for
   --hello-after-seconds (the ratio is against the mean of both hello-world rates);
   sockets: every fan opens /queue/{id}/ws and keeps it (--ws-concurrency handshakes in
   flight); admission: the
   queue resumes and every socket is held for --hold seconds while the admitters let fans
   in at --admit-per-minute and the waitingrooms push statuses to the rest;
5. measures: joins/s and join latency (client side), how many joins the gateway answered
   itself and why it passed any on (its own /metrics), open sockets (clients and the
   waitingrooms' own gauge), memory per socket (the waitingroom processes' RSS growth from
   before the first join to all sockets open, over the sockets), push lag (from the
   admission time the admitters announce on the queue's pub/sub channel to the fan's
   receipt of the "admitted" push; the waitingrooms' own push-lag histogram alongside),
   admission-rate accuracy (admitted_total's slope while fans were waiting, against the
   rate set);
   With --challenge-difficulty N the event's door is on at N (PATCH challenge_difficulty)
   and the load processes are bench/surge_door.py's: before the warm-up every fan GETs
   /queue/{id}/challenge (measured apart) and gets a solved challenge (--genuine-solves of
   them solved with the altcha package's solver, the rest minted with the stack's secret:
   bench/door.py says why), outside the join window (the solve is the fan's device's, done
   before the fan joins); every join then carries {"altcha": ...};
6. prints the table and PASS/FAIL against: join throughput >= 60% of hello-world's, p99
   push lag < 1 s, memory < 40 KB per socket, every fan joined and held a socket (exit
   status 0 on PASS, 1 on FAIL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.reserve import (  # noqa: E402
    ProcessGroups,
    clear_redis,
    clock_ticks,
    pids_named,
    start_nginx,
)
from bench.reserve_load import Summary, summarize  # noqa: E402
from bench.reserve_setup import create_vhost, delete_vhost, wait_for_lock  # noqa: E402
from bench.search import http_get, say, service_env, wait_for  # noqa: E402
from bench.surge_setup import (  # noqa: E402
    Admissions,
    Sampler,
    children_of,
    consecutive_ports,
    create_surge_database,
    gateway_config,
    gateway_joins,
    histogram_quantile,
    metric,
    open_files,
    queue_bench_settings,
    rss_bytes,
    wait_for_time_wait,
)
from deploy.render_nginx import SOCKETS_PER_WAITINGROOM, worker_processes  # noqa: E402
from ticketing.auth import issue_dev_token  # noqa: E402
from ticketing.config import Settings  # noqa: E402
from waitingroom.processes import waitingroom_pids  # noqa: E402

RUN_DIR = ROOT / ".run" / "bench" / "surge"
NAME = "ticketing_bench_surge"
REDIS_PREFIX = "tkbench-surge:"
TARGET_JOIN_RATIO = 0.6
TARGET_PUSH_LAG_P99_S = 1.0
TARGET_BYTES_PER_SOCKET = 40 * 1024
# Fans of their own join (and leave) before the surge, unmeasured, as the hello route is
# warmed up before it is measured.
WARMUP_JOINS = 1_000
# Sockets one load process holds: under its 20,000 open files with room for the pool.
FANS_PER_LOAD_PROCESS = 8_000


def bench_settings(base: Settings, args: argparse.Namespace) -> Settings:
    return queue_bench_settings(
        base,
        NAME,
        REDIS_PREFIX,
        args.waitingrooms,
        # The fans join first and open their sockets after: none may count as gone meanwhile.
        queue_abandon_seconds=3600,
        gateway_queue_join="off" if args.python_joins else "on",
    )


def api(method: str, url: str, token: str, body: object = None) -> dict:
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300]
        raise SystemExit(f"bench: {method} {url} answered {exc.code}: {detail!r}") from None


def start_servers(
    settings: Settings, args: argparse.Namespace, procs: ProcessGroups
) -> subprocess.Popen[bytes]:
    hello_ports = [consecutive_ports(1) for _ in range(args.waitingrooms)]
    for port in hello_ports:
        procs.start(
            f"hello:{port}",
            [sys.executable, "bench/surge_hello.py", str(port)],
            dict(os.environ),
            RUN_DIR / f"hello_{port}.log",
        )
    supervisor = procs.start(
        "waitingroom",
        [sys.executable, "-m", "waitingroom", "--supervise"],
        service_env(settings),
        RUN_DIR / "waitingroom.log",
    )
    start_nginx(gateway_config(settings, hello_ports), settings, procs, RUN_DIR)
    for port in settings.waitingroom_ports:
        wait_for(
            f"waitingroom on {port}",
            lambda p=port: http_get(f"http://127.0.0.1:{p}/healthz")[0] == 200,
            60,
        )
    gateway = f"http://127.0.0.1:{settings.gateway_port}"
    wait_for(
        "the hello-world route through the gateway",
        lambda: http_get(gateway + "/bench/hello")[0] == 200,
        30,
    )
    procs.check_alive()
    return supervisor


def start_load(
    settings: Settings, args: argparse.Namespace, procs: ProcessGroups, event_id: int
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    fans = [f"fan-{i:06d}" for i in range(args.fans)]
    warmup = [f"warm-{i:05d}" for i in range(WARMUP_JOINS)]
    n = args.load_processes
    door = {
        "challenge_difficulty": args.challenge_difficulty,
        "genuine_solves": -(-args.genuine_solves // n),
    }
    specs = [
        {
            "gateway": f"http://127.0.0.1:{settings.gateway_port}",
            "event_id": event_id,
            "fans": fans[i::n],
            "warmup_fans": warmup[i::n],
            "concurrency": max(1, args.concurrency // n),
            "ws_concurrency": max(1, args.ws_concurrency // n),
            "hello_seconds": args.hello_seconds,
            "hello_after_seconds": args.hello_after_seconds,
            "step_seconds": args.step_seconds,
            "request_timeout": 30,
            **(door if args.challenge_difficulty else {}),
        }
        for i in range(n)
    ]
    script = "bench/surge_door.py" if args.challenge_difficulty else "bench/surge_load.py"
    return start_loads(procs, script, specs, service_env(settings), RUN_DIR)


def start_loads(
    procs: ProcessGroups,
    script: str,
    specs: list[dict],
    env: dict[str, str],
    run_dir: Path,
    label: str = "load",
) -> Loads:
    """One load process per spec (``script SPEC.json RESULT.json``, both files and its log
    named ``{label}_{i}`` in run_dir, stdin and stdout piped for tell() and expect()),
    returned once each has said "ready"."""
    loads = []
    for i, spec in enumerate(specs):
        spec_path = run_dir / f"{label}_{i}.spec.json"
        spec_path.write_text(json.dumps(spec))
        result = run_dir / f"{label}_{i}.result.json"
        result.unlink(missing_ok=True)
        proc = procs.start(
            f"load-{label}-{i}",  # "load..." exits when told: ProcessGroups.check_alive
            [sys.executable, script, str(spec_path), str(result)],
            env,
            run_dir / f"{label}_{i}.log",
            pipe=True,
        )
        loads.append((proc, result))
    expect(loads, "ready", 120)
    return loads


def tell(loads: Loads, line: str) -> None:
    for proc, _ in loads:
        assert proc.stdin is not None
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()


Loads = list[tuple[subprocess.Popen[bytes], Path]]


def expect(loads: Loads, word: str, within: float) -> list[str]:
    """Each load process's next line, which must start with ``word``."""
    deadline = time.monotonic() + within
    lines = []
    for proc, _ in loads:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], max(0, deadline - time.monotonic()))
        line = proc.stdout.readline().decode() if ready else ""
        if not line.startswith(word):
            raise SystemExit(f"bench: a load process did not say {word!r} in time; see {RUN_DIR}")
        lines.append(line.strip())
    return lines


class CpuMeter:
    """CPU seconds each group of processes used between its start and stop()."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._start = {k: clock_ticks(v) for k, v in groups.items()}
        self.seconds: dict[str, float] = {}

    def stop(self) -> None:
        self.seconds = {k: clock_ticks(v) - self._start[k] for k, v in self.groups.items()}


def waitingroom_state(settings: Settings, pids: list[int]) -> dict:
    texts = [
        http_get(f"http://127.0.0.1:{port}/metrics")[1].decode()
        for port in settings.waitingroom_ports
    ]
    return {
        "rss": {pid: rss_bytes(pid) for pid in pids},
        "files": {pid: open_files(pid) for pid in pids},
        "sockets": sum(metric(t, "ticketing_queue_open_sockets") for t in texts),
        "texts": texts,
    }


def admission_rate(samples: list[tuple[float, object]]) -> tuple[float, float]:
    """(admissions per minute, seconds measured) from samples of the running queue, while
    fans were waiting the whole time (an empty line admits nobody, whatever the rate)."""
    waiting = [(t, q) for t, q in samples if q["waiting"] > 0]
    if len(waiting) < 2:
        return 0.0, 0.0
    (t0, first), (t1, last) = waiting[0], waiting[-1]
    seconds = t1 - t0
    if seconds <= 0:
        return 0.0, 0.0
    return (last["admitted_total"] - first["admitted_total"]) * 60 / seconds, seconds


def merge(results: list[dict]) -> dict:
    merged: dict = {
        "hello": {"latencies_ms": [], "statuses": {}, "seconds": 0.0},
        "hello_after": {"latencies_ms": [], "statuses": {}, "seconds": 0.0},
        "join": {"latencies_ms": [], "statuses": {}, "samples": {}, "unsent": 0},
        "ws": {
            "opened": 0,
            "failed": 0,
            "unopened": 0,
            "closed_early": 0,
            "handshake_ms": [],
            "samples": {},
            "pushes": {},
        },
        "admitted_at": {},
        "opened_at": {},
        "cpu_seconds": 0.0,
    }
    if "challenge" in results[0]:  # bench/surge_door.py's fans
        merged |= merge_door(results)
    for r in results:
        for side in ("hello", "hello_after", "join"):
            merged[side]["latencies_ms"] += r[side]["latencies_ms"]
            statuses = merged[side]["statuses"]
            for status, count in r[side]["statuses"].items():
                statuses[int(status)] = statuses.get(int(status), 0) + count
        for side in ("hello", "hello_after"):
            merged[side]["seconds"] = max(merged[side]["seconds"], r[side]["seconds"])
        merged["join"]["samples"] |= r["join"].get("samples", {})
        merged["join"]["unsent"] += r["join"]["unsent"]
        ws = r["ws"]
        for key in ("opened", "failed", "unopened", "closed_early"):
            merged["ws"][key] += ws[key]
        merged["ws"]["handshake_ms"] += ws["handshake_ms"]
        merged["ws"]["samples"] |= ws["samples"]
        for kind, count in ws["pushes"].items():
            merged["ws"]["pushes"][kind] = merged["ws"]["pushes"].get(kind, 0) + count
        merged["admitted_at"] |= r["admitted_at"]
        merged["cpu_seconds"] += r["cpu_seconds"]
        merged["opened_at"] |= r["opened_at"]
    for side in ("join", "ws"):
        merged[side]["started_at"] = min(r[side]["started_at"] for r in results)
        merged[side]["finished_at"] = max(r[side]["finished_at"] for r in results)
    return merged


def merge_door(results: list[dict]) -> dict:
    """bench/surge_door.py's figures: the challenges fetched, the genuine solves."""
    fetched: dict = {"latencies_ms": [], "statuses": {}, "samples": {}, "seconds": 0.0}
    genuine: dict = {"solve_ms": [], "tries": []}
    for r in results:
        fetched["latencies_ms"] += r["challenge"]["latencies_ms"]
        for status, count in r["challenge"]["statuses"].items():
            fetched["statuses"][int(status)] = fetched["statuses"].get(int(status), 0) + count
        fetched["samples"] |= r["challenge"]["samples"]
        fetched["seconds"] = max(fetched["seconds"], r["challenge"]["seconds"])
        for key in ("solve_ms", "tries"):
            genuine[key] += r["genuine"][key]
    return {"challenge": fetched, "genuine": genuine}


def lag_summary(admitted_at: dict[str, float], e2e: dict, hold_ended: float) -> Summary:
    """Admission to receipt of the "admitted" push, for fans whose socket was open when
    they were admitted (anyone else hears it in the first status of a new socket) and who
    were admitted while the sockets were held: the admitters go on during the teardown,
    when the load processes close every socket and hear late what still comes."""
    heard, opened = e2e["admitted_at"], e2e["opened_at"]
    lags = [
        (heard[user] - at) * 1000
        for user, at in admitted_at.items()
        if user in heard and opened.get(user, float("inf")) < at < hold_ended
    ]
    return summarize(lags, len(lags), 1.0)


def report(args: argparse.Namespace, settings: Settings, run: dict) -> bool:
    e2e = run["e2e"]
    hello = summarize(
        e2e["hello"]["latencies_ms"],
        sum(e2e["hello"]["statuses"].values()),
        e2e["hello"]["seconds"],
    )
    window = e2e["join"]["finished_at"] - e2e["join"]["started_at"]
    joins = summarize(e2e["join"]["latencies_ms"], sum(e2e["join"]["statuses"].values()), window)
    handshakes = summarize(
        e2e["ws"]["handshake_ms"],
        e2e["ws"]["opened"],
        e2e["ws"]["finished_at"] - e2e["ws"]["started_at"],
    )
    lag = run["lag"]
    hello_after = summarize(
        e2e["hello_after"]["latencies_ms"],
        sum(e2e["hello_after"]["statuses"].values()),
        e2e["hello_after"]["seconds"],
    )
    # Against hello world's mean rate before and after the joins: the VM's pace drifts.
    baseline = (hello.rate + hello_after.rate) / 2
    ratio = joins.rate / baseline if baseline else 0.0
    before, after = run["before"], run["after"]
    grown = sum(after["rss"].values()) - sum(before["rss"].values())
    sockets = after["sockets"]
    per_socket = grown / sockets if sockets else float("inf")
    rate, rate_seconds = run["rate"]
    accuracy = rate / args.admit_per_minute if args.admit_per_minute else 0.0
    print()
    print(
        f"surge: {args.fans:,} fans, {args.waitingrooms} waitingroom processes, "
        f"{args.load_processes} load processes, {worker_processes(args.waitingrooms)} nginx "
        f"workers, {args.concurrency} requests in flight; admit {args.admit_per_minute:,}/min"
    )
    header = f"{'side (through the gateway)':<34}{'per s':>10}{'p50 ms':>10}{'p99 ms':>10}"
    print(f"{header}{'count':>9}")
    rows = (
        ("hello world GET /bench/hello", hello),
        ("join POST /queue/{id}/join", joins),
        ("hello world again, after", hello_after),
    )
    for name, s in rows:
        print(f"{name:<34}{s.rate:>10.0f}{s.p50_ms:>10.1f}{s.p99_ms:>10.1f}{s.count:>9,}")
    if "challenge" in e2e:
        door_lines(args, e2e)
    statuses = {
        side: ", ".join(f"{k}: {v:,}" for k, v in sorted(e2e[side]["statuses"].items()))
        for side in ("hello", "join", "hello_after")
    }
    print(
        f"statuses: hello {statuses['hello']}; join {statuses['join']}; "
        f"hello after {statuses['hello_after']}"
    )
    for status, body in e2e["join"]["samples"].items():
        print(f"  e.g. join {status}: {body}")
    joined = e2e["join"]["statuses"].get(200, 0)
    unsent = e2e["join"]["unsent"]
    print(
        f"join throughput: {ratio:.0%} of hello-world's mean before and after "
        f"({joins.rate / hello.rate if hello.rate else 0:.0%} of before's, "
        f"{joins.rate / hello_after.rate if hello_after.rate else 0:.0%} of after's); "
        f"{joined:,} fans joined in {window:.1f} s "
        f"({'within' if window <= 60 else 'NOT within'} a minute)"
        + (f"; {unsent:,} not sent within {args.step_seconds:.0f} s" if unsent else "")
    )
    passed = {
        k.removeprefix("passed:"): int(v)
        for k, v in run["gateway"].items()
        if k.startswith("passed:") and v
    }
    print(
        f"joins the gateway answered itself (deploy/lua/queue_join.lua): "
        f"{run['gateway'].get('answered', 0):,.0f}; passed to the waitingroom: "
        + (json.dumps(passed, sort_keys=True) if passed else "none")
        + (
            f"; {run['gateway']['place_joins'] / run['gateway']['place_calls']:.1f} joins "
            f"per PLACE call ({run['gateway']['place_calls']:,.0f} calls)"
            if run["gateway"].get("place_calls")
            else ""
        )
    )
    ws = e2e["ws"]
    print(
        f"websockets: {ws['opened']:,} opened by the fans, {sockets:,.0f} open in the "
        f"waitingrooms, {ws['failed']:,} failed, {ws['unopened']:,} not tried within "
        f"{args.step_seconds:.0f} s, {ws['closed_early']:,} closed early; "
        f"{handshakes.rate:,.0f} handshakes/s, p50 {handshakes.p50_ms:.1f} ms, p99 "
        f"{handshakes.p99_ms:.1f} ms; pushes {json.dumps(ws['pushes'], sort_keys=True)}"
    )
    for kind, sample in ws["samples"].items():
        print(f"  e.g. {kind}: {sample}")
    files = ", ".join(f"{n:,}" for n in after["files"].values())
    print(
        f"memory: waitingroom RSS {sum(before['rss'].values()) / 2**20:,.0f} MiB before the "
        f"first join, {sum(after['rss'].values()) / 2**20:,.0f} MiB with every socket open: "
        f"{per_socket / 1024:.1f} KB per socket (open files per process: {files})"
    )
    server_lag = {
        kind: histogram_quantile(after["texts"], "ticketing_queue_push_lag_seconds", kind, 0.99)
        for kind in ("admitted", "status")
    }
    print(
        f"push lag, admission -> fan hears it: p50 {lag.p50_ms:.0f} ms, p99 {lag.p99_ms:.0f} ms "
        f"over {lag.count:,} admissions ({run['announced']:,} announced); the waitingrooms' own "
        f"p99 bucket: admitted <= {server_lag['admitted']} s, status <= {server_lag['status']} s"
    )
    print(
        f"admission rate: {rate:,.0f}/min measured over {rate_seconds:.0f} s of waiting fans, "
        f"{args.admit_per_minute:,}/min set: {accuracy:.1%}"
    )
    print(
        f"CPU seconds: {', '.join(f'{k} {v:.1f}' for k, v in run['cpu'].items())}; "
        f"load average at the start {run['load_average']:.1f}"
    )
    for side, summary in (("hello", hello), ("join", joins)):
        cpu = run["phase_cpu"][side]
        per = {k: v * 1e6 / summary.count for k, v in cpu.items() if v} if summary.count else {}
        print(
            f"CPU us per {side} request, by component: "
            + ", ".join(f"{k} {v:.0f}" for k, v in per.items())
            + f"; all {sum(per.values()):.0f}"
        )
    checks = [
        (ratio >= TARGET_JOIN_RATIO, f"join throughput >= {TARGET_JOIN_RATIO:.0%} of hello-world"),
        (
            lag.count > 0 and lag.p99_ms < TARGET_PUSH_LAG_P99_S * 1000,
            f"p99 push lag < {TARGET_PUSH_LAG_P99_S:.0f} s",
        ),
        (
            per_socket < TARGET_BYTES_PER_SOCKET,
            f"< {TARGET_BYTES_PER_SOCKET // 1024} KB per socket",
        ),
        (
            e2e["join"]["statuses"].get(200, 0) == args.fans
            and ws["opened"] == args.fans
            and ws["closed_early"] == 0,
            "every fan joined and held a socket",
        ),
    ]
    failed = [name for passed, name in checks if not passed]
    print("PASS" if not failed else "FAIL: missed " + ", ".join(failed))
    if args.summary:
        pushes = sum(ws["pushes"].values())
        figures = {
            "hello": [hello.rate, hello.p50_ms, hello.p99_ms, hello.count],
            "join": [joins.rate, joins.p50_ms, joins.p99_ms, joins.count],
            "hello_after": [hello_after.rate, hello_after.p50_ms, hello_after.p99_ms],
            "join_ratio": ratio,
            "challenge_difficulty": args.challenge_difficulty,
            "push_lag_ms": [lag.p50_ms, lag.p99_ms, lag.count],
            "bytes_per_socket": per_socket,
            "sockets": sockets,
            "hold_seconds": args.hold,
            "pushes": pushes,
            "admit_accuracy": accuracy,
            "phase_cpu": run["phase_cpu"],
            "failed": failed,
        }
        args.summary.write_text(json.dumps(figures, indent=1))
    return not failed


def door_lines(args: argparse.Namespace, e2e: dict) -> None:
    """With the door on: the challenges fetched before the warm-up (not in the join
    window), and the solves the altcha package's solver made of some of them."""
    fetched = e2e["challenge"]
    got = summarize(fetched["latencies_ms"], sum(fetched["statuses"].values()), fetched["seconds"])
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(fetched["statuses"].items()))
    print(
        f"door at difficulty {args.challenge_difficulty} (every join above carried a solved "
        f"challenge): GET /queue/{{id}}/challenge before the warm-up {got.rate:,.0f}/s, "
        f"p50 {got.p50_ms:.1f} ms, p99 {got.p99_ms:.1f} ms ({statuses})"
    )
    for status, body in fetched["samples"].items():
        print(f"  e.g. challenge {status}: {body}")
    genuine = e2e["genuine"]
    if genuine["solve_ms"]:
        solves = sorted(genuine["solve_ms"])
        per_try = sum(solves) / sum(genuine["tries"])
        print(
            f"solved by altcha.solve_challenge (the rest minted, bench/door.py): "
            f"{len(solves)} fans, CPU ms per solve median {solves[len(solves) // 2]:.0f}, "
            f"max {solves[-1]:.0f}; {per_try:.3f} ms a try"
        )


def profile(pids: list[int], seconds: int, procs: ProcessGroups) -> None:
    """py-spy records each waitingroom process (raw stacks in RUN_DIR/profile_PID.txt)."""
    spy = ROOT / ".venv" / "bin" / "py-spy"
    for pid in pids:
        argv = [
            str(spy),
            "record",
            "--nonblocking",
            "-r",
            "100",
            "-d",
            str(seconds),
            "-f",
            "raw",
            "-o",
            str(RUN_DIR / f"profile_{pid}.txt"),
            "-p",
            str(pid),
        ]
        procs.start(f"py-spy-{pid}", argv, dict(os.environ), RUN_DIR / f"py-spy_{pid}.log")


def run(args: argparse.Namespace, settings: Settings) -> int:
    user = urlsplit(settings.amqp_url).username or "guest"
    procs = ProcessGroups()
    admissions = None
    try:
        say(f"recreating {NAME} with one queue-enabled event of {args.seats:,} seats")
        event_id = asyncio.run(create_surge_database(settings.database_url, args.seats))
        create_vhost(NAME, user)
        clear_redis(settings)
        say(
            f"starting {args.waitingrooms} waitingroom and {args.waitingrooms} hello-world "
            "processes behind nginx"
        )
        supervisor = start_servers(settings, args, procs)
        rooms = waitingroom_pids(supervisor.pid)
        gateway = f"http://127.0.0.1:{settings.gateway_port}"
        admin = issue_dev_token(settings, "bench-ops", ["admin"])["access_token"]
        queue_url = f"{gateway}/admin/queues/{event_id}"
        api(
            "PATCH",
            queue_url,
            admin,
            {
                "admit_per_minute": args.admit_per_minute,
                "max_active": 10_000_000,
                "session_seconds": 3600,
                "paused": True,
                "mode": "manual",
                "challenge_difficulty": args.challenge_difficulty,
            },
        )
        admissions = Admissions(settings.redis_url, f"{REDIS_PREFIX}queue:notify", event_id)
        say(f"starting {args.load_processes} load processes for {args.fans:,} fans")
        loads = start_load(settings, args, procs, event_id)
        load_pids = [proc.pid for proc, _ in loads]
        nginx_pids = children_of(next(p.pid for n, p in procs.started if n == "nginx"))
        load_average = os.getloadavg()[0]

        hellos = [p.pid for n, p in procs.started if n.startswith("hello:")]
        groups = {
            "waitingroom": rooms,
            "hello": hellos,
            "redis": pids_named("redis-server"),
            "nginx": nginx_pids,
            "load": load_pids,
        }
        say(f"hello world: {args.hello_seconds:.0f} s, {args.concurrency} in flight")
        hello_cpu = CpuMeter(groups)
        tell(loads, "hello")
        expect(loads, "hello-done", args.hello_seconds + 60)
        hello_cpu.stop()
        procs.check_alive()
        before = waitingroom_state(settings, rooms)
        cpu_before = {k: clock_ticks(v) for k, v in groups.items()}
        sampler = Sampler(lambda: api("GET", queue_url, admin))
        say(f"surge: {args.fans:,} fans join (the queue paused)")
        if args.profile:
            profile(rooms, args.profile, procs)
        gateway_before = gateway_joins(settings)
        join_cpu = CpuMeter(groups)
        tell(loads, "join")
        expect(loads, "joined", args.step_seconds + 60)
        join_cpu.stop()
        gateway_after = gateway_joins(settings)
        say(f"hello world again: {args.hello_after_seconds:.0f} s")
        tell(loads, "hello-after")
        expect(loads, "hello-after-done", args.hello_after_seconds + 60)
        say(f"surge: {args.fans:,} fans open their websockets")
        tell(loads, "open")
        opened = expect(loads, "opened", args.step_seconds + 60)
        say("sockets: " + "; ".join(line.removeprefix("opened ") for line in opened))
        time.sleep(2)  # the last sockets' first pushes go out
        after = waitingroom_state(settings, rooms)
        say(
            f"admission runs at {args.admit_per_minute:,}/min; holding {after['sockets']:,.0f} "
            f"sockets for {args.hold:.0f} s"
        )
        hold_cpu = CpuMeter(groups)
        api("PATCH", queue_url, admin, {"paused": False})
        resumed_at = time.monotonic()
        time.sleep(args.hold)
        hold_cpu.stop()
        hold_ended = time.time()
        procs.check_alive()
        samples = sampler.close()
        cpu = {k: clock_ticks(v) - cpu_before[k] for k, v in groups.items()}
        after["texts"] = waitingroom_state(settings, rooms)["texts"]
        tell(loads, "stop")
        for proc, _ in loads:
            proc.wait(timeout=60)
        if any(proc.returncode for proc, _ in loads):
            raise SystemExit(f"bench: a load process failed; see {RUN_DIR}")
        e2e = merge([json.loads(path.read_text()) for _, path in loads])
        admissions.close()
        result = {
            "e2e": e2e,
            "before": before,
            "after": after,
            "cpu": cpu,
            "load_average": load_average,
            "phase_cpu": {
                "hello": hello_cpu.seconds,
                "join": join_cpu.seconds,
                "hold": hold_cpu.seconds,
            },
            "gateway": {k: v - gateway_before.get(k, 0) for k, v in gateway_after.items()},
            "rate": admission_rate([(t, q) for t, q in samples if t >= resumed_at]),
            "lag": lag_summary(admissions.at, e2e, hold_ended),
            "announced": len(admissions.at),
        }
        return 0 if report(args, settings, result) else 1
    except subprocess.TimeoutExpired:
        say("a step did not finish in time")
        return 1
    finally:
        if admissions is not None:
            admissions.close()
        procs.stop_all()
        wait_for_time_wait()  # before rabbitmqctl, which needs a free port
        delete_vhost(NAME)
        clear_redis(settings)


def add_process_args(parser: argparse.ArgumentParser) -> None:
    """--waitingrooms and --load-processes, sized for --fans' sockets by default."""
    parser.add_argument(
        "--waitingrooms",
        type=int,
        default=0,
        help="waitingroom processes (default: enough for the fans' sockets)",
    )
    parser.add_argument(
        "--load-processes",
        type=int,
        default=0,
        help="load generator processes (default: enough for their sockets)",
    )


def size_processes(args: argparse.Namespace) -> argparse.Namespace:
    """The defaults of add_process_args' flags: a waitingroom per 80% of the sockets one
    holds, a load process per FANS_PER_LOAD_PROCESS fans, at least two of each."""
    args.waitingrooms = args.waitingrooms or max(
        2, math.ceil(args.fans / (SOCKETS_PER_WAITINGROOM * 0.8))
    )
    args.load_processes = args.load_processes or max(
        2, math.ceil(args.fans / FANS_PER_LOAD_PROCESS)
    )
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/surge.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fans", type=int, default=20_000)
    parser.add_argument("--summary", type=Path, help="also write the figures here (JSON)")
    add_process_args(parser)
    parser.add_argument("--concurrency", type=int, default=128, help="requests in flight")
    parser.add_argument(
        "--ws-concurrency", type=int, default=96, help="websocket handshakes in flight"
    )
    parser.add_argument("--hello-seconds", type=float, default=10)
    parser.add_argument(
        "--hello-after-seconds",
        type=float,
        default=5,
        help="hello world again right after the joins (the ratio uses both measurements)",
    )
    parser.add_argument(
        "--python-joins",
        action="store_true",
        help="every join crosses to a waitingroom process (TICKETING_GATEWAY_QUEUE_JOIN=off), "
        "the way joins went before the gateway answered them",
    )
    parser.add_argument("--admit-per-minute", type=int, default=3000)
    parser.add_argument(
        "--challenge-difficulty",
        type=int,
        default=0,
        metavar="N",
        help="the event's door on at N (ticketing/domain/challenge.py; 3 is the advised "
        "level): each fan fetches a challenge and joins with a solved one (bench/surge_door.py)",
    )
    parser.add_argument(
        "--genuine-solves",
        type=int,
        default=12,
        help="with --challenge-difficulty, this many fans solve the challenge they fetched "
        "with the altcha package's solver (the others' are minted: bench/door.py)",
    )
    parser.add_argument(
        "--hold", type=float, default=30, help="seconds every socket is held once all are open"
    )
    parser.add_argument("--seats", type=int, default=5000, help="a multiple of 500")
    parser.add_argument(
        "--profile",
        type=int,
        metavar="SECONDS",
        default=0,
        help=f"py-spy record the waitingrooms for SECONDS from the first join "
        f"(raw stacks in {RUN_DIR})",
    )
    parser.add_argument(
        "--wait-for-lock",
        type=float,
        default=0,
        metavar="SECONDS",
        help="wait this long for another benchmark's run to end instead of giving up",
    )
    parser.add_argument(
        "--step-seconds",
        type=float,
        default=120,
        help="no join (and no handshake) starts after this many seconds of its step; what "
        "is left is reported as not sent",
    )
    args = size_processes(parser.parse_args(argv))

    # A TERM (a CI timeout) unwinds like Ctrl-C, so the finally above still stops everything.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("TICKETING_ENV", "dev")  # a bench runs a development stack
    settings = bench_settings(Settings.from_env(), args)
    with wait_for_lock(settings.database_url, args.wait_for_lock):
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        for stale in RUN_DIR.iterdir():
            if stale.is_file():
                stale.unlink()
        return run(args, settings)


if __name__ == "__main__":
    sys.exit(main())
