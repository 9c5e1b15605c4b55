"""The on-sale benchmark: a whole on-sale as fans live it, over the public API through the
nginx gateway, next to the same on-sale with payment skipped, in one run.

    .venv/bin/python bench/onsale.py                            # 20,000 fans, 10,000 seats
    .venv/bin/python bench/onsale.py --fans 2000 --seats 1000   # about a minute, for development

What it does, all on 127.0.0.1 and all stopped and cleaned up at the end:

1. takes the benchmarks' run lock (bench/reserve.py's), recreates its own database
   (``ticketing_bench_onsale``: one arena of --seats, two queue-enabled events of it, on sale
   in a day), RabbitMQ vhost and Redis prefix (``tkbench-onsale:``);
2. starts the stack as make run does: localstripe (``python -m deploy.localstripe_server``
   with TICKETING_STRIPE_LATENCY_MS=--latency-ms; plain ``localstripe`` without latency when
   this tree has no such module, said in the output), --workers booking workers (slots i/n,
   commands only, as deploy/Procfile) plus one payments worker, ``python -m waitingroom
   --supervise`` (its waitingrooms and --frontdoors booking front doors) and the gateway
   (``python -m deploy.gateway`` on deploy/nginx.conf.template);
3. runs two on-sales, each on its own event, the paid one first (--baseline-first turns
   that round): it sets the queue (PATCH /admin/queues/{id}: --admit-per-minute,
   --max-active, --session-seconds, mode manual, not paused), starts --load-processes
   bench/onsale_load.py with the fans split between them, moves the event's on_sale_at to
   --pre-queue-seconds from now and lets the fans go: half of them join the pre-queue at
   once, the others at on-sale plus a random second of --arrival-seconds. Each fan follows
   the queue over its websocket (polling /status when refused), and once admitted reserves
   1-4 best-available seats and pays with pm_card_visa (10% first with
   pm_card_chargeCustomerFail, 402, then again); 5% abandon once admitted, 5% leave the
   line while waiting. The reserve-only on-sale stops at the hold. A run ends when every
   fan is finished, or --drain-seconds after the sell-out and the last arrival (the
   fans still out are stopped and reported), or after --timeout;
4. samples every second: the queue (GET /admin/queues/{id}: waiting, active,
   admitted_total), the event's live holds, bookings and seats sold (PostgreSQL), and
   counts the fans' 409s and sold_out notices per second;
5. balances the ledger: no seat sold twice (bookings' seats disjoint, each booked seat
   its booking's), every succeeded PaymentIntent in localstripe a booking's or refunded,
   the API agrees with the database (each fan's 201 with its booking; /me/bookings of
   sampled fans; the queue's figures with the fans'), nobody left waiting;
6. writes the time series to bench/results/onsale-<UTC time>.csv and its chart (.png),
   prints both runs side by side and PASS/FAIL per target (exit status 0 when all pass).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import urllib.error
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import onsale_report as report  # noqa: E402
from bench.onsale_setup import (  # noqa: E402
    NAME,
    Ledger,
    create_onsale_database,
    my_bookings,
    onsale_settings,
    read_ledger,
    sample,
    set_on_sale,
    start_stack,
    stripe_objects,
)
from bench.reserve import ProcessGroups, clear_redis, clock_ticks, pids_named  # noqa: E402
from bench.reserve_setup import create_vhost, delete_vhost  # noqa: E402
from bench.search import say, service_env  # noqa: E402
from bench.surge import (  # noqa: E402
    Loads,
    add_process_args,
    api,
    size_processes,
    start_loads,
    tell,
    wait_for_lock,
)
from bench.surge_setup import Sampler, children_of, wait_for_time_wait  # noqa: E402
from ticketing.auth import issue_dev_token  # noqa: E402
from ticketing.config import Settings  # noqa: E402
from waitingroom.processes import waitingroom_pids  # noqa: E402

RUN_DIR = ROOT / ".run" / "bench" / "onsale"
RESULTS = ROOT / "bench" / "results"
SAMPLED_FANS = 200  # whose /me/bookings is checked against the database


def make_fans(args: argparse.Namespace, prefix: str) -> list[list]:
    """[user, kind, quantity, arrival, leave_after] per fan: arrival None for the pre-queue
    (half of them), else seconds after on-sale; kinds: 5% leave the line, 5% abandon once
    admitted, 10% pay with a declined card first, the rest buy."""
    rng = random.Random(args.seed)
    pre_queue = set(rng.sample(range(args.fans), args.fans // 2))
    fans = []
    for i in range(args.fans):
        draw = rng.random()
        if draw < args.leave_share:
            kind = "leave"
        elif draw < args.leave_share + args.abandon_share:
            kind = "abandon"
        elif draw < args.leave_share + args.abandon_share + args.decline_share:
            kind = "decline_first"
        else:
            kind = "buy"
        arrival = None if i in pre_queue else rng.uniform(0, args.arrival_seconds)
        fans.append([f"{prefix}-{i:06d}", kind, rng.randint(1, 4), arrival, rng.uniform(1, 15)])
    return fans


def start_load(
    settings: Settings,
    args: argparse.Namespace,
    procs: ProcessGroups,
    name: str,
    event_id: int,
    gateway: str,
    pay: bool,
    run_dir: Path = RUN_DIR,
    extra: dict | None = None,
    script: str = "bench/onsale_load.py",
) -> Loads:
    """The load processes of one on-sale; ``extra`` goes into each one's spec (the chaos
    run's fans keep a timeline and reconnect their sockets: bench/onsale_load.py; the
    fans at a door, bench/bots_load.py, which is then the ``script``)."""
    fans = make_fans(args, name)
    n = args.load_processes
    specs = [
        {
            "gateway": gateway,
            "event_id": event_id,
            "fans": fans[i::n],
            "pay": pay,
            "concurrency": max(1, args.concurrency // n),
            "ws_concurrency": max(1, args.ws_concurrency // n),
            "poll_seconds": args.poll_seconds,
            "request_timeout": 30,
            **(extra or {}),
        }
        for i in range(n)
    ]
    env = service_env(settings)
    return start_loads(procs, script, specs, env, run_dir, f"{name}_load")


def done_lines(loads: Loads, done: set[int], run_dir: Path = RUN_DIR) -> None:
    """Note the load processes that said "done" (without waiting for the others)."""
    for i, (proc, _) in enumerate(loads):
        if i in done:
            continue
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 0)
        if ready:
            line = proc.stdout.readline().decode()
            if line.startswith("done"):
                done.add(i)
            elif not line:
                raise SystemExit(f"bench: a load process exited early; see {run_dir}")


def on_sale(
    settings: Settings,
    args: argparse.Namespace,
    procs: ProcessGroups,
    gateway: str,
    name: str,
    event_id: int,
    pay: bool,
    groups: dict[str, list[int]],
    *,
    run_dir: Path = RUN_DIR,
    load_extra: dict | None = None,
    on_go: Callable[[float], None] | None = None,
    hold_open: Callable[[], bool] | None = None,
    start: Callable[[], Loads] | None = None,
) -> dict:
    """One on-sale: set up, run, stop the fans; what it collected (with the CPU seconds
    each group of processes used from the go to the end). For bench/chaos.py: ``on_go`` is
    told the on-sale time as the fans go, and while ``hold_open()`` is true the run does
    not end for its fans being finished or the sale being over (the timeout still holds).
    ``start`` starts the load processes instead of :func:`start_load` (bench/bots.py's
    fans and bots)."""
    admin = issue_dev_token(settings, "bench-ops", ["admin"])["access_token"]
    queue_url = f"{gateway}/admin/queues/{event_id}"
    api(
        "PATCH",
        queue_url,
        admin,
        {
            "admit_per_minute": args.admit_per_minute,
            "max_active": args.max_active,
            "session_seconds": args.session_seconds,
            "paused": False,
            "mode": "manual",
        },
    )
    say(f"{name}: starting {args.load_processes} load processes for {args.fans:,} fans")
    loads = (
        start()
        if start is not None
        else start_load(settings, args, procs, name, event_id, gateway, pay, run_dir, load_extra)
    )
    on_sale_at = time.time() + args.pre_queue_seconds
    set_on_sale(settings.database_url, event_id, on_sale_at)
    sampler, db = second_by_second(settings.database_url, queue_url, admin, event_id, pay)
    load_average = os.getloadavg()[0]
    say(
        f"{name}: go; on sale in {args.pre_queue_seconds:.0f} s, the pre-queue's half joins "
        f"now, the others over {args.arrival_seconds:.0f} s after on-sale"
    )
    groups = {**groups, "postgres (whole server)": pids_named("postgres")}
    cpu_before = {k: clock_ticks(v) for k, v in groups.items()}
    tell(loads, f"go {on_sale_at}")
    if on_go is not None:
        on_go(on_sale_at)
    holding = hold_open or (lambda: False)
    done: set[int] = set()
    sold_out_seen = None
    last_arrival = on_sale_at + args.arrival_seconds
    reason = "timeout"
    next_report = on_sale_at
    while time.time() < on_sale_at + args.timeout:
        time.sleep(0.5)
        procs.check_alive()
        done_lines(loads, done, run_dir)
        latest = sampler.samples[-1][1] if sampler.samples else None
        if latest and latest["available"] == 0 and (not pay or latest["holds"] == 0):
            sold_out_seen = sold_out_seen or time.time()
        ended = end_reason(len(done) == len(loads), sold_out_seen, last_arrival, args)
        if ended and not holding():
            reason = ended
            break
        if latest and time.time() >= next_report:
            next_report += 10
            progress(latest, time.time() - on_sale_at)
    time.sleep(1.0)  # one more sample after the end
    groups["postgres (whole server)"] = pids_named("postgres")
    cpu = {k: clock_ticks(v) - cpu_before[k] for k, v in groups.items()}
    final_queue = api("GET", queue_url, admin)
    samples = sampler.close()
    db[0].close()
    say(f"{name}: ended ({reason}); stopping the fans")
    tell(loads, "stop")
    for proc, _ in loads:
        proc.wait(timeout=120)
    if any(proc.returncode for proc, _ in loads):
        raise SystemExit(f"bench: a load process failed; see {run_dir}")
    # The next run's fans do not share the machine with this queue's admitter.
    api("PATCH", queue_url, admin, {"paused": True})
    return {
        "name": name,
        "pay": pay,
        "event_id": event_id,
        "on_sale_at": on_sale_at,
        "ended": reason,
        "load_average": load_average,
        "cpu": cpu,
        "final_queue": final_queue,
        "samples": [(s["at"], s) for _, s in samples],
        "loads": merge([json.loads(path.read_text()) for _, path in loads]),
    }


def second_by_second(
    database_url: str, queue_url: str, admin: str, event_id: int, pay: bool
) -> tuple[Sampler, list[psycopg.Connection]]:
    """The sampler of the queue's and the event's figures, and its database connection
    (in a list: it connects again after a server restart, for bench/chaos.py)."""
    db = [psycopg.connect(database_url, autocommit=True)]

    def probe() -> dict:
        try:
            queue = api("GET", queue_url, admin)
        except SystemExit as exc:  # api()'s way to fail: a missed sample, not a dead sampler
            raise RuntimeError(str(exc)) from None
        if db[0].closed or db[0].broken:
            db[0] = psycopg.connect(database_url, autocommit=True, connect_timeout=2)
        return sample(db[0], queue, event_id, pay)

    return Sampler(probe), db


def end_reason(
    all_done: bool, sold_out_seen: float | None, last_arrival: float, args: argparse.Namespace
) -> str | None:
    """Why the on-sale may end now: every fan finished, or the sale is over and the fans
    still out had --drain-seconds after it and the last arrival; None to go on."""
    if all_done:
        return "every fan finished"
    if sold_out_seen and time.time() > max(sold_out_seen, last_arrival) + args.drain_seconds:
        return f"sold out {args.drain_seconds:.0f} s ago"
    return None


def progress(latest: dict, after: float) -> None:
    say(
        f"  {after:5.0f} s: waiting {latest['waiting']:,}, active "
        f"{latest['active']:,}, admitted {latest['admitted_total']:,}, holds "
        f"{latest['holds']:,}, bookings {latest['bookings']:,}, seats sold "
        f"{latest['seats_sold']:,}, available {latest['available']:,}"
    )


def merge(results: list[dict]) -> dict:
    merged: dict = {
        "fans": [],
        "latencies_ms": {},
        "statuses": {},
        "samples": {},
        "answers_409": [],
        "loop_lag_ms": [],
        "gc_pauses_ms": [],
        "full_gc_ms": [],
        "max_rss_mb": [],
        "ws": Counter(),
        "cpu_seconds": 0.0,
    }
    for r in results:
        merged["fans"] += r["fans"]
        for route, values in r["latencies_ms"].items():
            merged["latencies_ms"].setdefault(route, []).extend(values)
        for route, counts in r["statuses"].items():
            into = merged["statuses"].setdefault(route, Counter())
            for status, n in counts.items():
                into[int(status)] += n
        merged["samples"] |= r["samples"]
        merged["answers_409"] += r["answers_409"]
        merged["loop_lag_ms"] += r.get("loop_lag_ms", [])
        merged["gc_pauses_ms"] += r.get("gc_pauses_ms", [])
        if r.get("full_gc_ms") is not None:
            merged["full_gc_ms"].append(r["full_gc_ms"])
        if r.get("max_rss_mb") is not None:
            merged["max_rss_mb"].append(r["max_rss_mb"])
        merged["ws"].update(r["ws"])
        merged["cpu_seconds"] += r["cpu_seconds"]
        if "timeline" in r:  # bench/chaos.py's fans: every answer's time, route, status
            merged.setdefault("timeline", []).extend(r["timeline"])
    return merged


def balance(settings: Settings, gateway: str, run: dict, claim_seconds: float) -> report.RunFigures:
    """The run's figures and its ledger, from the fans' records, PostgreSQL, localstripe
    and the API."""
    fans = run["loads"]["fans"]
    ledger = asyncio.run(read_ledger(settings.database_url, run["event_id"]))
    pay = run["pay"]
    problems: list[str] = []
    if pay:
        sales = [(at, len(ids)) for _user, ids, _pi, at in ledger.bookings.values()]
        double = report.double_sales(
            {b: ids for b, (_u, ids, _pi, _at) in ledger.bookings.items()},
            {t: (status, booking) for t, (status, booking, _h) in ledger.tickets.items()},
        )
        intents = stripe_objects(settings, "payment_intents")
        refunds = stripe_objects(settings, "refunds")
        unpaid = report.unmatched_charges(
            intents,
            {pi for _u, _ids, pi, _at in ledger.bookings.values() if pi},
            report.refunded_intents(intents, refunds),
            ledger.all_hold_ids,
        )
        run["stripe"] = {
            "intents": Counter(pi.get("status") for pi in intents),
            "refunds": len(refunds),
        }
        problems += check_bookings(settings, gateway, fans, ledger)
    else:
        live = {h: v for h, v in ledger.holds.items() if v[2] == "held"}
        sales = [(at, len(ids)) for _user, ids, _status, at in live.values()]
        double = check_holds(fans, live, ledger.tickets)
        unpaid = []
    double += report.fans_answered_twice(fans)
    sold = selling = report.selling(sales)
    available = sum(t[0] == "available" for t in ledger.tickets.values())
    held = sum(t[0] == "reserved" for t in ledger.tickets.values())
    sold_out = available == 0 and (held == 0 or not pay)
    last_sale = sold.last_at if sold_out else None
    problems += check_queue(run, fans, last_sale if pay else None, claim_seconds)
    latencies = run["loads"]["latencies_ms"]
    lags = report.notice_lags(fans, last_sale) if pay else []
    errors = report.eta_errors(fans)
    statuses = run["loads"]["statuses"]
    purchases = (
        len(ledger.bookings)
        if pay
        else len({v[0] for v in ledger.holds.values() if v[2] == "held"})
    )
    return report.RunFigures(
        name=run["name"],
        selling=selling,
        sold_out_after=(last_sale - ledger.on_sale_at) if last_sale else None,
        sold_90_after=report.time_to_share(sales, ledger.on_sale_at, len(ledger.tickets), 0.9),
        join=report.latency(latencies.get("join", [])),
        wait=report.latency(w * 1000 for w in report.waits(fans)),
        reserve=report.latency(latencies.get("reserve", [])),
        confirm=report.latency(latencies.get("confirm", [])) if pay else None,
        admitted=run["final_queue"]["admitted_total"],
        heard_admitted=sum(f["admitted_at"] is not None for f in fans),
        purchases=purchases,
        notice_lag_p99=(report.percentile(sorted(lags), 99) if lags else None),
        notice_lags=len(lags),
        eta_error=report.median(errors),
        eta_samples=len(errors),
        eta_gap=report.median([abs(e - a) for e, a in report.eta_pairs(fans)]),
        errors_5xx=sum(n for c in statuses.values() for s, n in c.items() if s >= 500),
        double_sold=double,
        unpaid_charges=unpaid,
        ledger=problems,
        to_hold=report.latency(t * 1000 for t in report.admission_to_hold(fans)),
    )


def check_bookings(settings: Settings, gateway: str, fans: list[dict], ledger: Ledger) -> list[str]:
    """Each fan's 201 against its booking in the database, and /me/bookings of a sample."""
    problems = []
    by_user: dict[str, list[tuple[str, list[int]]]] = {}
    for booking, (user, ids, _pi, _at) in ledger.bookings.items():
        by_user.setdefault(user, []).append((booking, ids))
    booked = [f for f in fans if f["outcome"] == "booked"]
    differ = sum(
        by_user.get(f["user"]) != [(f["booking_id"], sorted(f["ticket_ids"]))] for f in booked
    )
    if differ:
        problems.append(f"{differ} fan(s)' 201 booking differs from the database's")
    unanswered = [u for u in by_user if u not in {f["user"] for f in booked}]
    unfinished = sum(f["outcome"] is None for f in fans)
    if len(unanswered) > unfinished:
        problems.append(f"{len(unanswered)} booking(s) in the database no fan heard of")
    rng = random.Random(7)
    sampled = rng.sample(booked, min(SAMPLED_FANS, len(booked)))
    others = [f for f in fans if f["outcome"] != "booked"]
    sampled += rng.sample(others, min(SAMPLED_FANS // 4, len(others)))
    wrong = 0
    for f in sampled:
        token = issue_dev_token(settings, f["user"], [])["access_token"]
        try:
            items = my_bookings(gateway, token)
        except (OSError, urllib.error.HTTPError) as exc:
            problems.append(f"GET /me/bookings failed for {f['user']}: {exc}")
            break
        api_ids = sorted((b["booking_id"], sorted(t["id"] for t in b["tickets"])) for b in items)
        db_ids = sorted(by_user.get(f["user"], []))
        wrong += api_ids != db_ids
    if wrong:
        problems.append(
            f"/me/bookings differs from the database for {wrong} of {len(sampled)} sampled fans"
        )
    return problems


def check_holds(fans: list[dict], live: dict[str, tuple], tickets: dict[int, tuple]) -> list[str]:
    """Reserve-only: no seat in two live holds, each reserved seat in its own, each fan's
    201 with its hold (a hold is this run's sale: double_sales reads it as a booking)."""
    problems = report.double_sales(
        {h: ids for h, (_u, ids, _s, _at) in live.items()},
        {
            t: ("booked", hold) if status == "reserved" else (status, booking)
            for t, (status, booking, hold) in tickets.items()
        },
    )
    problems = [p.replace("booked", "held").replace("booking", "hold") for p in problems]
    held = {h: (user, ids) for h, (user, ids, _s, _at) in live.items()}
    differ = sum(
        held.get(f.get("hold_id")) != (f["user"], sorted(f["ticket_ids"]))
        for f in fans
        if f["outcome"] == "held"
    )
    if differ:
        problems.append(f"{differ} fan(s)' 201 hold differs from the database's")
    return problems


JOIN_IN_FLIGHT_SECONDS = 10.0  # a join's longest, the door's solves and retries included


def stopped_as(fan: dict) -> str:
    """Where a fan the run stopped was: the last status it heard, else whether its join
    was still out (a late arrival at the stop, or, with the door on, still solving) and
    for how long, else that it had not arrived."""
    if fan["last_status"] is not None:
        return str(fan["last_status"])
    sent = fan.get("join_sent")
    if sent is None:
        return "not arrived"
    if fan.get("stopped_at", sent) - sent <= JOIN_IN_FLIGHT_SECONDS:
        return "joining"
    return f"joining for over {JOIN_IN_FLIGHT_SECONDS:.0f} s"


def check_queue(
    run: dict, fans: list[dict], sold_out_at: float | None, claim_seconds: float
) -> list[str]:
    """The queue's figures against the fans': nobody left waiting, every admission the
    fans heard counted."""
    problems = []
    final = run["final_queue"]
    unfinished = Counter(stopped_as(f) for f in fans if f["outcome"] is None)
    failed = Counter(f["outcome"] for f in fans if (f["outcome"] or "").startswith("failed"))
    if run["pay"] and unfinished:
        problems.append(
            f"{sum(unfinished.values())} fan(s) never finished (last heard: "
            + ", ".join(f"{k} {v}" for k, v in unfinished.most_common())
            + ")"
        )
    if not run["pay"]:
        expected = ("all_held", "waiting", "joining")
        stuck = {k: v for k, v in unfinished.items() if k not in expected}
        if stuck:
            problems.append(f"fans stopped in unexpected states: {stuck}")
    if failed:
        problems.append("fans failed: " + ", ".join(f"{k} {v}" for k, v in failed.items()))
    # Fans told sold_out keep their place (seats may come back): the queue's waiting
    # figure is theirs and the unfinished fans' still in line, plus the admitted fans the
    # sell-out put back at the front (abandoners whose claim window was still open).
    low, high = report.waiting_at_end(fans, sold_out_at, claim_seconds)
    if not low <= final["waiting"] <= high:
        said = f"{low:,}" if low == high else f"{low:,}-{high:,}"
        problems.append(
            f"the queue counts {final['waiting']:,} waiting at the end, the fans say {said}"
        )
    if run["pay"] and sold_out_at is not None and final["active"]:
        problems.append(f"{final['active']:,} sessions still active after the sell-out")
    heard = sum(f["admitted_at"] is not None for f in fans)
    if final["admitted_total"] < heard:
        problems.append(
            f"the queue counts {final['admitted_total']:,} admitted, the fans heard {heard:,}"
        )
    return problems


def loop_lag(run: dict) -> str:
    """How late the load generators' event loops ran, over the run: the fans' times of
    hearing something (admitted, sold_out) can be this late on the client's side."""
    lags = run["loads"]["loop_lag_ms"]
    if not lags:
        return "-"
    return f"{report.latency(lags).p99_ms:.0f} / {max(lags):.0f}"


def load_gc(run: dict) -> str:
    """The load generators' garbage collection: off during the on-sale (see
    bench/onsale_load.py), so what one full collection of their heaps took at the end is the
    pause it spared every fan of the process; the collections before the go; their size."""
    loads = run["loads"]
    full = loads["full_gc_ms"]
    before = loads["gc_pauses_ms"]
    return (
        f"full {max(full):.0f} ms; {len(before)} before go, max "
        f"{max(before, default=0):.0f} ms; RSS {max(loads['max_rss_mb'], default=0):.0f} MB"
        if full
        else "-"
    )


def rejoined(fans: list[dict]) -> str:
    again = sum(bool(f.get("rejoins")) for f in fans)
    ended = sum(bool(f.get("admission_ended")) for f in fans)
    return f"{again:,} ({ended:,} of them because their admission ended unused)"


def side_by_side(
    args: argparse.Namespace, runs: list[dict], figs: list[report.RunFigures], simulated: bool
) -> None:
    def ms(lat: report.Latency | None) -> str:
        return "-" if lat is None or not lat.count else f"{lat.p50_ms:.0f} / {lat.p99_ms:.0f}"

    def opt(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    rows = [
        ("seats sold /s (first to last sale)", lambda f, r: f"{f.selling.rate:,.1f}"),
        (
            "seats sold, selling window s",
            lambda f, r: f"{f.selling.seats:,} in {f.selling.seconds:.1f}",
        ),
        ("on-sale to sold out, s", lambda f, r: opt(f.sold_out_after, ".1f")),
        ("on-sale to 90% of seats sold, s", lambda f, r: opt(f.sold_90_after, ".1f")),
        ("join p50 / p99 ms", lambda f, r: ms(f.join)),
        ("wait (join to admitted) p50 / p99 ms", lambda f, r: ms(f.wait)),
        ("reserve p50 / p99 ms", lambda f, r: ms(f.reserve)),
        ("admitted to seats held p50 / p99 ms", lambda f, r: ms(f.to_hold)),
        ("confirm p50 / p99 ms", lambda f, r: ms(f.confirm)),
        (
            "admitted / purchases",
            lambda f, r: (
                f"{f.admitted:,} / {f.purchases:,} = {opt(f.over_admission, '.2f')}"
                f" ({f.heard_admitted:,} heard)"
            ),
        ),
        (
            "sold-out notice lag p99 s",
            lambda f, r: opt(f.notice_lag_p99, ".2f") + f" ({f.notice_lags:,} fans)",
        ),
        (
            "median ETA error",
            lambda f, r: (
                opt(f.eta_error, ".0%")
                + f" ({f.eta_samples:,} fans; median gap {opt(f.eta_gap, '.1f')} s)"
            ),
        ),
        ("5xx answers", lambda f, r: f"{f.errors_5xx:,}"),
        (
            "fans: outcomes",
            lambda f, r: ", ".join(
                f"{k} {v:,}"
                for k, v in Counter(
                    x["outcome"] or f"out:{x['last_status']}" for x in r["loads"]["fans"]
                ).most_common()
            ),
        ),
        ("load generators' loop lag p99 / max ms", lambda f, r: loop_lag(r)),
        ("load generators' GC (off in the on-sale)", lambda f, r: load_gc(r)),
        ("websockets", lambda f, r: json.dumps(dict(r["loads"]["ws"]), sort_keys=True)),
        ("fans who joined again", lambda f, r: rejoined(r["loads"]["fans"])),
        ("run ended", lambda f, r: f"{r['ended']}; load average {r['load_average']:.1f}"),
    ]
    width = 38
    print()
    print(
        f"on-sale: {args.fans:,} fans, {args.seats:,} seats, {args.workers} booking workers, "
        f"{args.waitingrooms} waitingrooms, {args.frontdoors} front doors, "
        f"{args.load_processes} load processes; tree "
        f"{args.tree}; admit "
        f"{args.admit_per_minute:,}/min, max_active {args.max_active:,}; provider latency "
        + (
            f"{args.latency_ms} ms (deploy.localstripe_server)"
            if simulated
            else "NONE (plain localstripe: this tree has no deploy/localstripe_server.py)"
        )
    )
    print(f"{'':<{width}}" + "".join(f"  {f.name:<40}" for f in figs))
    for label, value in rows:
        print(
            f"{label:<{width}}"
            + "".join(f"  {value(f, r):<40}" for f, r in zip(figs, runs, strict=True))
        )
    for r in runs:
        statuses = {route: dict(sorted(c.items())) for route, c in r["loads"]["statuses"].items()}
        print(f"{r['name']} statuses: {json.dumps(statuses, sort_keys=True)}")
        cpu = {**r["cpu"], "load generators": r["loads"]["cpu_seconds"]}
        print(
            f"{r['name']} CPU seconds from the go to the end: "
            + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
            + " (load generators: their whole life, token minting included)"
        )
        if "stripe" in r:
            print(
                f"{r['name']} localstripe: intents {dict(r['stripe']['intents'])}, "
                f"refunds {r['stripe']['refunds']}"
            )
        for key, body in list(r["loads"]["samples"].items())[:8]:
            print(f"  e.g. {key}: {body[:200]}")
    for f in figs:
        for line in f.double_sold + f.ledger:
            print(f"{f.name} ledger: {line}")
        if f.unpaid_charges:
            print(f"{f.name} ledger: {len(f.unpaid_charges)} charge(s) without booking or refund")


def build_parser(
    prog: str = "bench/onsale.py", description: str | None = __doc__
) -> argparse.ArgumentParser:
    """The on-sale's flags (bench/chaos.py adds its own to them)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fans", type=int, default=20_000)
    parser.add_argument("--seats", type=int, default=10_000, help="a multiple of 500")
    parser.add_argument("--workers", type=int, default=2, help="booking_worker processes")
    add_process_args(parser)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=128,
        help="HTTP requests in flight, over every load process",
    )
    parser.add_argument(
        "--ws-concurrency",
        type=int,
        default=96,
        help="websocket handshakes in flight, over every load process",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=2.0,
        help="a fan without a websocket polls its status this often",
    )
    # 3,000 a minute: what this 2-core machine's purchase path sustains with every fan
    # buying at once (bench/README.md: at 6,000 the paid on-sale overloads it).
    parser.add_argument("--admit-per-minute", type=int, default=3000)
    parser.add_argument("--max-active", type=int, default=100_000)
    parser.add_argument("--session-seconds", type=int, default=600)
    parser.add_argument(
        "--claim-seconds",
        type=int,
        default=30,
        help="TICKETING_ADMISSION_CLAIM_SECONDS for the waitingrooms",
    )
    parser.add_argument(
        "--frontdoors",
        type=int,
        default=1,
        help="booking front door processes (waitingroom --role booking; 0: the waitingrooms"
        " serve booking too, as before)",
    )
    parser.add_argument(
        "--latency-ms",
        type=int,
        default=300,
        help="TICKETING_STRIPE_LATENCY_MS: simulated provider latency",
    )
    parser.add_argument(
        "--pre-queue-seconds",
        type=float,
        default=0,
        help="from the go to on-sale (default: 5 s + 1 s per 500 pre-queue fans)",
    )
    parser.add_argument(
        "--arrival-seconds",
        type=float,
        default=20,
        help="the other half arrive within this many seconds of on-sale",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=15,
        help="after the sell-out and the last arrival, fans still out are stopped after this long",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="a run stops this many seconds after on-sale at the latest",
    )
    parser.add_argument("--leave-share", type=float, default=0.05)
    parser.add_argument("--abandon-share", type=float, default=0.05)
    parser.add_argument("--decline-share", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--baseline-first", action="store_true", help="run the reserve-only on-sale first"
    )
    parser.add_argument(
        "--wait-for-lock",
        type=float,
        default=0,
        metavar="SECONDS",
        help="wait this long for another benchmark's run to end",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = size_processes(build_parser().parse_args(argv))
    args.pre_queue_seconds = args.pre_queue_seconds or 5 + args.fans / 2 / 500

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("TICKETING_ENV", "dev")  # a bench runs a development stack
    settings = onsale_settings(
        Settings.from_env(), args.waitingrooms, args.claim_seconds, args.latency_ms, args.frontdoors
    )
    with wait_for_lock(settings.database_url, args.wait_for_lock):
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        for stale in RUN_DIR.iterdir():
            if stale.is_file():
                stale.unlink()
        return run(args, settings)


def tree_state() -> str:
    """The commit this run starts from, and how many tracked files differ from it (other
    sessions edit the tree while it runs)."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--untracked-files=no").splitlines()
    return f"{git('rev-parse', '--short', 'HEAD')}" + (
        f" + {len(changed)} uncommitted file(s)" if changed else ""
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    user = urlsplit(settings.amqp_url).username or "guest"
    args.tree = tree_state()
    procs = ProcessGroups()
    try:
        say(f"recreating {NAME}: two queue-enabled events of {args.seats:,} seats")
        events = asyncio.run(create_onsale_database(settings.database_url, args.seats))
        create_vhost(NAME, user)
        clear_redis(settings)
        say(
            f"starting localstripe, {args.workers} booking workers and a payments worker, "
            f"{args.waitingrooms} waitingrooms, {args.frontdoors} front doors and the gateway"
        )
        supervisor, workers, gateway, simulated = start_stack(
            settings, args.workers, procs, RUN_DIR, events.paid
        )
        started = dict(procs.started)
        groups = {
            "waitingroom": waitingroom_pids(supervisor.pid),
            "frontdoor": waitingroom_pids(supervisor.pid, "booking"),
            "booking_worker": [p.pid for p in workers],
            "localstripe": [started["localstripe"].pid],
            "nginx": [started["nginx"].pid, *children_of(started["nginx"].pid)],
            "redis": pids_named("redis-server"),
            "rabbitmq": pids_named("beam.smp"),
        }
        if not simulated:
            say("NOTE: no deploy/localstripe_server.py here: plain localstripe, no latency")
        order = [("paid", events.paid, True), ("reserve-only", events.reserve_only, False)]
        if args.baseline_first:
            order.reverse()
        runs = [on_sale(settings, args, procs, gateway, n, e, pay, groups) for n, e, pay in order]
        say("balancing the ledgers")
        figs = [balance(settings, gateway, r, args.claim_seconds) for r in runs]
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        RESULTS.mkdir(parents=True, exist_ok=True)
        series = {
            r["name"]: report.series(
                r["samples"], r["loads"]["fans"], r["loads"]["answers_409"], r["on_sale_at"]
            )
            for r in runs
        }
        csv_path = RESULTS / f"onsale-{stamp}.csv"
        png_path = RESULTS / f"onsale-{stamp}.png"
        report.write_csv(csv_path, series)
        report.draw(png_path, series, f"{args.fans:,} fans, {args.seats:,} seats")
        by_name = {f.name: f for f in figs}
        pay, baseline = by_name["paid"], by_name["reserve-only"]
        side_by_side(args, runs, figs, simulated)
        print(f"time series: {csv_path.relative_to(ROOT)}, chart: {png_path.relative_to(ROOT)}")
        checks = report.targets(pay, baseline, args.latency_ms if simulated else 0)
        for passed, line in checks:
            print(("PASS  " if passed else "FAIL  ") + line)
        failed = [line for passed, line in checks if not passed]
        print("PASS" if not failed else f"FAIL: {len(failed)} of {len(checks)} targets missed")
        return 0 if not failed else 1
    except subprocess.TimeoutExpired:
        say("a step did not finish in time")
        return 1
    finally:
        procs.stop_all()
        wait_for_time_wait()
        delete_vhost(NAME)
        clear_redis(settings)


if __name__ == "__main__":
    sys.exit(main())
