"""Bots against fans: who gets the seats with the queue's door (issue 14's proof of work)
off and on, in one run.

    .venv/bin/python bench/bots.py          # 3 bots x 60 accounts, 1,500 fans, 1,000 seats
    .venv/bin/python bench/bots.py --fans 300 --seats 500 --bots 2 --accounts-per-bot 20

The stack, the fans and the ledger are bench/onsale.py's (its flags work here too; the
defaults are smaller): one stack, two on-sales of the same arena, each on its own event,
the door off for the first and on for the second at --difficulty (3, the advised level;
--on-first turns the order round; --auto turns the automatic mode on too). In each, beside
onsale.py's fans (half in the pre-queue, half arriving over --arrival-seconds; at the door
each waits what its page's solve takes on a phone, --fan-tries-per-second, measured by
bench/solve_browser.py), --bots bot actors (bench/bots_load.py), each with
--accounts-per-bot accounts that skip the page and join at the go, all at once, for the
most seats a fan may take (4), then reserve and (with --pay) pay. At the door a bot solves
the challenges the waitingroom issues itself, in native code on --bot-cores solver threads
(its cores), at most --bot-cpu-per-account CPU seconds per account: past that the
account gives up.

The CPU model (default: one core per bot actor, one core-second per account). A bot farm's
accounts are its cheap part (sign-ups, proxies) and its cores the dear one; it spends per
account what it must to get that account in line early, and no more than the account is
likely to earn it. One core-second is about what difficulty 3's worst case costs native
code here (5,000 tries at 0.2 ms: bench/door.py), so a budget of one covers nearly every
challenge: the door does not price the bots out, it makes each actor's accounts wait their
turn for its cores. With 60 accounts an actor needs about half a minute of its core to
get them all in line; a farm with a core per account would need about half a second (and
the door would change little: see bench/README.md, "Bots"). The solver threads' CPU is this
machine's, shared with the stack: the report gives each actor's CPU seconds and the share
of a core it got.

The report: per on-sale, the seats sold (held, without --pay) to bots and to fans and the
bots' share, the bot accounts that got in line, gave up, and the seconds from the go to in
line; PASS when the bots' share with the door on is at most a quarter of the share with
it off (--target-ratio), the issue's target.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu import pids_named  # noqa: E402
from bench.onsale import balance, build_parser, on_sale, start_load  # noqa: E402
from bench.onsale_setup import (  # noqa: E402
    NAME,
    Ledger,
    create_onsale_database,
    onsale_settings,
    read_ledger,
    start_stack,
)
from bench.reserve import ProcessGroups, clear_redis  # noqa: E402
from bench.reserve_setup import (  # noqa: E402
    create_vhost,
    delete_vhost,
    wait_for_lock,
)
from bench.search import say, service_env  # noqa: E402
from bench.surge import Loads, api, size_processes, start_loads  # noqa: E402
from bench.surge_setup import children_of, wait_for_time_wait  # noqa: E402
from ticketing.auth import issue_dev_token  # noqa: E402
from ticketing.config import Settings  # noqa: E402
from ticketing.domain.challenge import RECOMMENDED_DIFFICULTY  # noqa: E402
from waitingroom.processes import waitingroom_pids  # noqa: E402

RUN_DIR = ROOT / ".run" / "bench" / "bots"
BOT_PREFIX = "bot"
BOT_SEATS = 4  # the most one fan may reserve: a bot always asks for it
TARGET_RATIO = 0.25


def bot_accounts(bots: int, accounts: int, sale: str) -> list[list[list[Any]]]:
    """Each actor's accounts as bench/onsale_load.py fan records: [user, kind, seats,
    arrival, leave_after]: they buy the most seats, join at the go (arrival None: at once,
    in the pre-queue when it is open) and never leave."""
    return [
        [[f"{BOT_PREFIX}{a}-{sale}-{j:04d}", "buy", BOT_SEATS, None, 0.0] for j in range(accounts)]
        for a in range(bots)
    ]


def is_bot(user: str) -> bool:
    return user.startswith(BOT_PREFIX)


def without_spent_bots(run: dict[str, Any]) -> dict[str, Any]:
    """The run without the bot accounts that gave up at the door (out of CPU budget, their
    join refused ``403``: what the door is for, counted in the report's door figures), so
    the ledger check lists only what went wrong."""
    fans = [
        f
        for f in run["loads"]["fans"]
        if not (is_bot(f["user"]) and (f.get("door") or {}).get("gave_up"))
    ]
    return {**run, "loads": {**run["loads"], "fans": fans}}


def seats_by_user(ledger: Ledger, pay: bool) -> dict[str, int]:
    """The seats each user ended with: booked (paid on-sale) or in a live hold."""
    seats: dict[str, int] = {}
    if pay:
        rows = [(user, ids) for user, ids, _pi, _at in ledger.bookings.values()]
    else:
        rows = [(user, ids) for user, ids, status, _at in ledger.holds.values() if status == "held"]
    for user, ids in rows:
        seats[user] = seats.get(user, 0) + len(ids)
    return seats


@dataclass(frozen=True, slots=True)
class Share:
    bots: int  # seats
    fans: int
    bot_accounts: int  # accounts with seats
    fan_accounts: int

    @property
    def bot_share(self) -> float:
        total = self.bots + self.fans
        return self.bots / total if total else 0.0


def share_of(seats: dict[str, int]) -> Share:
    bots = {u: n for u, n in seats.items() if is_bot(u)}
    fans = {u: n for u, n in seats.items() if not is_bot(u)}
    return Share(sum(bots.values()), sum(fans.values()), len(bots), len(fans))


def target_met(off: Share, on: Share, ratio: float = TARGET_RATIO) -> bool:
    """The issue's target: the bots' share with the door on at most ``ratio`` of the
    share with it off (met trivially when bots got nothing either way)."""
    return on.bot_share <= off.bot_share * ratio


@dataclass(frozen=True, slots=True)
class DoorFigures:
    """What the door did to one side (bots or fans) of one on-sale."""

    accounts: int
    met_door: int  # answered a challenge at least once
    in_line: int  # joined
    gave_up: int  # a bot's budget ran out
    cpu_s: float  # bots: CPU seconds solving, all accounts
    device_s_median: float | None  # fans: a phone's solve, median
    to_line_s: list[float]  # go (join sent) to in line (joined), per account in line

    def to_line(self, q: float) -> float | None:
        if not self.to_line_s:
            return None
        ordered = sorted(self.to_line_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def door_figures(records: list[dict[str, Any]]) -> DoorFigures:
    doors = [r.get("door") for r in records]
    met = [d for d in doors if d]
    devices = [d["device_s"] for d in met if d.get("device_s")]
    return DoorFigures(
        accounts=len(records),
        met_door=len(met),
        in_line=sum(r["joined_at"] is not None for r in records),
        gave_up=sum(bool(d.get("gave_up")) for d in met),
        cpu_s=sum(d.get("cpu_s", 0.0) for d in met),
        device_s_median=statistics.median(devices) if devices else None,
        to_line_s=[
            r["joined_at"] - r["join_sent"]
            for r in records
            if r["joined_at"] is not None and r.get("join_sent") is not None
        ],
    )


def start_door_loads(
    settings: Settings,
    args: argparse.Namespace,
    procs: ProcessGroups,
    sale: str,
    event_id: int,
    gateway: str,
) -> Loads:
    """onsale.py's fans (through bench/bots_load.py, at the door as a phone meets it)
    and the bot actors, one load process each."""
    fan_door = {"role": "fan", "tries_per_second": args.fan_tries_per_second}
    fans = start_load(
        settings,
        args,
        procs,
        sale,
        event_id,
        gateway,
        args.pay,
        RUN_DIR,
        {"door": fan_door},
        script="bench/bots_load.py",
    )
    bot_door = {"role": "bot", "cpu_budget": args.bot_cpu_per_account, "cores": args.bot_cores}
    specs = [
        {
            "gateway": gateway,
            "event_id": event_id,
            "fans": accounts,
            "pay": args.pay,
            "concurrency": len(accounts),  # every account at once
            "ws_concurrency": len(accounts),
            "poll_seconds": args.poll_seconds,
            "request_timeout": 30,
            "door": bot_door,
        }
        for accounts in bot_accounts(args.bots, args.accounts_per_bot, sale)
    ]
    env = service_env(settings)
    bots = start_loads(procs, "bench/bots_load.py", specs, env, RUN_DIR, f"{sale}_bots")
    return fans + bots


def set_door(gateway: str, settings: Settings, event_id: int, difficulty: int, auto: bool) -> None:
    admin = issue_dev_token(settings, "bench-ops", ["admin"])["access_token"]
    api(
        "PATCH",
        f"{gateway}/admin/queues/{event_id}",
        admin,
        {"challenge_difficulty": difficulty, "challenge_auto": auto},
    )


def door_levels(samples: list[tuple[float, dict[str, Any]]], on_sale_at: float) -> str:
    """The door's difficulty over the on-sale, from the second-by-second samples: where it
    started and each step (the automatic mode's), seconds from the on-sale."""
    steps: list[str] = []
    last = None
    for at, sample in samples:
        level = sample.get("door_level")
        if level is None or level == last:
            continue
        steps.append(
            f"{level} from the start" if last is None else f"{level} at {at - on_sale_at:.0f} s"
        )
        last = level
    return "; ".join(steps) or "-"


def report_sale(label: str, run: dict[str, Any], share: Share) -> None:
    records = run["loads"]["fans"]
    bots = door_figures([r for r in records if is_bot(r["user"])])
    fans = door_figures([r for r in records if not is_bot(r["user"])])
    say(
        f"{label}: seats to bots {share.bots:,} ({share.bot_accounts:,} accounts), to fans "
        f"{share.fans:,} ({share.fan_accounts:,} fans): bots' share {share.bot_share:.1%}; "
        f"ended: {run['ended']}; load average at the go {run['load_average']:.2f}"
    )
    for side, f in (("bots", bots), ("fans", fans)):
        median, p95 = f.to_line(0.5), f.to_line(0.95)
        line = (
            f"  {side}: {f.accounts:,} accounts, {f.met_door:,} met the door, "
            f"{f.in_line:,} in line, {f.gave_up:,} gave up; go to in line median "
            + (f"{median:.1f} s, p95 {p95:.1f} s" if median is not None else "-")
        )
        if side == "bots" and f.met_door:
            line += f"; solving CPU {f.cpu_s:.0f} s ({f.cpu_s / f.met_door:.2f} s an account)"
        if f.device_s_median is not None:
            line += f"; a phone's solve, median {f.device_s_median:.2f} s"
        say(line)
    say(f"  the door's difficulty: {door_levels(run['samples'], run['on_sale_at'])}")
    outcomes: dict[str, int] = {}
    for r in records:
        key = ("bot " if is_bot(r["user"]) else "fan ") + (r["outcome"] or "out")
        outcomes[key] = outcomes.get(key, 0) + 1
    say("  outcomes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())))


def bot_cpu(run_dir: Path, sale: str) -> str:
    """Each bot actor's CPU seconds and wall seconds solving, from its records."""
    parts = []
    for path in sorted(run_dir.glob(f"{sale}_bots_*.result.json")):
        doors = [f.get("door") or {} for f in json.loads(path.read_text())["fans"]]
        cpu = sum(d.get("cpu_s", 0.0) for d in doors)
        # An account's wall time runs from its challenge's turn being asked for (every
        # account at the go) to its solve: the longest is the actor's time solving.
        wall = max((d.get("wall_s", 0.0) for d in doors), default=0.0)
        if cpu:
            parts.append(f"{cpu:.0f} s CPU" + (f" ({cpu / wall:.0%} of a core)" if wall else ""))
    return "; ".join(parts)


def run(args: argparse.Namespace, settings: Settings) -> int:
    user = urlsplit(settings.amqp_url).username or "guest"
    procs = ProcessGroups()
    try:
        say(f"recreating {NAME}: two queue-enabled events of {args.seats:,} seats")
        events = asyncio.run(create_onsale_database(settings.database_url, args.seats))
        create_vhost(NAME, user)
        clear_redis(settings)
        supervisor, workers, gateway, _simulated = start_stack(
            settings, args.workers, procs, RUN_DIR, events.paid
        )
        started = dict(procs.started)
        groups = {
            "waitingroom": waitingroom_pids(supervisor.pid),
            "booking_worker": [p.pid for p in workers],
            "nginx": [started["nginx"].pid, *children_of(started["nginx"].pid)],
            "redis": pids_named("redis-server"),
        }
        sales = [("off", events.paid, 0), ("on", events.reserve_only, args.difficulty)]
        if args.on_first:
            sales.reverse()
        runs, shares = {}, {}
        for sale, event_id, difficulty in sales:
            say(
                f"on-sale '{sale}': the door "
                + (f"on at difficulty {difficulty}" if difficulty else "off")
                + (", automatic mode" if difficulty and args.auto else "")
                + f"; {args.fans:,} fans, {args.bots} bots x {args.accounts_per_bot} accounts"
            )
            set_door(gateway, settings, event_id, difficulty, bool(difficulty and args.auto))
            runs[sale] = on_sale(
                settings,
                args,
                procs,
                gateway,
                sale,
                event_id,
                args.pay,
                groups,
                run_dir=RUN_DIR,
                start=functools.partial(
                    start_door_loads, settings, args, procs, sale, event_id, gateway
                ),
            )
            ledger = asyncio.run(read_ledger(settings.database_url, event_id))
            shares[sale] = share_of(seats_by_user(ledger, args.pay))
            cpu = bot_cpu(RUN_DIR, sale)
            if cpu:
                say(f"  bot actors' solving: {cpu}")
        say("the ledgers")
        for sale, r in runs.items():
            figures = balance(settings, gateway, without_spent_bots(r), args.claim_seconds)
            for line in figures.double_sold + figures.ledger:
                say(f"  {sale}: {line}")
        print()
        print(
            f"bots: {args.bots} actors x {args.accounts_per_bot} accounts ({BOT_SEATS} seats "
            f"each), {args.bot_cores} core(s) per actor, {args.bot_cpu_per_account:g} CPU s per "
            f"account; {args.fans:,} fans (a phone solves {args.fan_tries_per_second:,.0f} "
            f"tries/s); {args.seats:,} seats; {'paid' if args.pay else 'reserve-only'}"
        )
        for sale in runs:
            report_sale(f"door {sale}", runs[sale], shares[sale])
        off, on = shares["off"], shares["on"]
        met = target_met(off, on, args.target_ratio)
        ratio = on.bot_share / off.bot_share if off.bot_share else float("nan")
        print(
            f"{'PASS' if met else 'FAIL'}  bots' share with the door on at difficulty "
            f"{args.difficulty}: {on.bot_share:.1%}, off: {off.bot_share:.1%} ({ratio:.2f}x; "
            f"target <= {args.target_ratio:g}x)"
        )
        return 0 if met else 1
    except subprocess.TimeoutExpired:
        say("a step did not finish in time")
        return 1
    finally:
        procs.stop_all()
        wait_for_time_wait()
        delete_vhost(NAME)
        clear_redis(settings)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("bench/bots.py", __doc__)
    parser.set_defaults(fans=1500, seats=1000)
    parser.add_argument("--bots", type=int, default=3, help="bot actors")
    parser.add_argument("--accounts-per-bot", type=int, default=60)
    parser.add_argument(
        "--bot-cpu-per-account",
        type=float,
        default=1.0,
        help="CPU seconds a bot spends solving for one account at most",
    )
    parser.add_argument(
        "--bot-cores", type=int, default=1, help="solver threads (cores) per bot actor"
    )
    parser.add_argument(
        "--difficulty",
        type=int,
        default=RECOMMENDED_DIFFICULTY,
        help="the door's difficulty in the 'on' on-sale",
    )
    parser.add_argument(
        "--auto", action="store_true", help="the door's automatic mode on too (on-sale 'on')"
    )
    parser.add_argument(
        "--fan-tries-per-second",
        type=float,
        default=4300,
        help="a fan's page's pace in tries a second (bench/solve_browser.py measures it: "
        "4,313-4,593 on this machine)",
    )
    parser.add_argument(
        "--pay", action="store_true", help="both on-sales paid (default: they stop at the hold)"
    )
    parser.add_argument("--on-first", action="store_true", help="the door-on on-sale first")
    parser.add_argument("--target-ratio", type=float, default=TARGET_RATIO)
    args = size_processes(parser.parse_args(argv))
    args.pre_queue_seconds = args.pre_queue_seconds or 5 + args.fans / 2 / 500

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("TICKETING_ENV", "dev")
    settings = onsale_settings(
        Settings.from_env(), args.waitingrooms, args.claim_seconds, args.latency_ms, args.frontdoors
    )
    with wait_for_lock(settings.database_url, args.wait_for_lock):
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        for stale in RUN_DIR.iterdir():
            if stale.is_file():
                stale.unlink()
        return run(args, settings)


if __name__ == "__main__":
    sys.exit(main())
