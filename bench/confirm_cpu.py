"""CPU a booking worker spends per confirm: N CONFIRMs through one real worker process,
read from the process's own CPU clock (/proc/PID/stat, user + system).

    .venv/bin/python bench/confirm_cpu.py [--confirms 500] [--warmup 50] [--latency-ms 0]
                                          [--stages payments] [--tree DIR] [--wait-for-lock S]

What it does, on 127.0.0.1, cleaned up at the end:

1. recreates its own database (``ticketing_bench_confirm_cpu``), migrated, with one event of
   warmup + N seats and one live hold per seat (one seat each, written directly);
2. creates its own RabbitMQ vhost and starts a localstripe of its own
   (deploy/localstripe_server.py, --latency-ms of simulated provider latency);
3. starts ONE ``python -m booking_worker`` from --tree (default: this checkout; give it an
   exported older commit, ``git archive <rev> | tar -x -C DIR``, to measure that code), with
   TICKETING_BOOKING_STAGES=--stages when given (a tree older than that setting ignores it);
4. sends --warmup confirms (connections, pools, imports, caches) and waits for every answer,
   then reads the worker's CPU clock, sends the N measured confirms, all at once, as the
   front door does (one message each, to ``booking.payments``; the worker's prefetch bounds
   the payments in flight), waits for every answer and reads the clock again;
5. checks every answer is a 201 and the database has N + warmup confirmed bookings;
6. probes ``Payments.charge`` alone in a process of --tree's code: --probe charges one
   after another, CPU per charge from that process's clock (logging at WARNING, so it is
   the SDK's request and response handling, not its log lines).

Takes the benches' run lock (bench/reserve_setup.py), so it neither disturbs nor is
disturbed by another bench run on this machine; --wait-for-lock waits for it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import asyncpg
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu import pids_named  # noqa: E402
from bench.reserve import ProcessGroups, clock_ticks, wait_for_consumers  # noqa: E402
from bench.reserve_setup import RunLock, create_vhost, delete_vhost  # noqa: E402
from bench.search import free_port, http_get, say, service_env, wait_for  # noqa: E402
from ticketing.config import Settings  # noqa: E402
from ticketing.db import migrate  # noqa: E402
from ticketing.messages import (  # noqa: E402
    BOOKING_EXCHANGE,
    BOOKING_PAYMENTS_QUEUE,
    PAYMENTS_ROUTING_KEY,
    SIGNATURE_HEADER,
    Confirm,
    command_signature,
)

NAME = "ticketing_bench_confirm_cpu"
RUN_DIR = ROOT / ".run" / "bench" / "confirm_cpu"
PRICE_CENTS = 5000
VISA = "pm_card_visa"

# Runs in a process of --tree's code: Payments.charge alone, one charge after another.
PROBE = """
import asyncio, json, logging, sys, time, uuid
from ticketing.config import Settings
from ticketing.payments import Payments, PaymentSucceeded
logging.basicConfig(level=logging.WARNING)

async def main(count):
    payments = Payments(Settings.from_env())
    async def charge():
        outcome = await payments.charge(
            idempotency_key=uuid.uuid4().hex, amount_cents=5000, currency="EUR",
            payment_method="pm_card_visa", metadata={"hold_id": "probe"})
        assert isinstance(outcome, PaymentSucceeded), outcome
    try:
        for _ in range(20):
            await charge()
        cpu, wall = time.process_time(), time.monotonic()
        for _ in range(count):
            await charge()
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    finally:
        await payments.close()
    print(json.dumps({"cpu_seconds": cpu, "wall_seconds": wall, "charges": count}))

asyncio.run(main(int(sys.argv[1])))
"""


def confirm_settings(base: Settings, vhost: str) -> Settings:
    amqp = urlsplit(base.amqp_url)
    localstripe = free_port()
    return dataclasses.replace(
        base,
        env="dev",
        database_url=urlunsplit(urlsplit(base.database_url)._replace(path="/" + NAME)),
        amqp_url=urlunsplit(amqp._replace(path="/" + quote(vhost, safe=""))),
        host="127.0.0.1",
        localstripe_port=localstripe,
        stripe_api_base=f"http://127.0.0.1:{localstripe}",
        booking_worker_metrics_port=free_port(),
        # Every confirm's payment waits on no one's hold expiring mid-run.
        hold_ttl_seconds=3600,
    )


async def create_holds(database_url: str, count: int) -> list[tuple[str, str]]:
    """A fresh, migrated database with one event of ``count`` seats, each seat held by a
    fan of its own; returns (hold id, user id) per hold."""
    migrate.drop_database(database_url)
    migrate.create_database(database_url)
    migrate.upgrade(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            venue = await conn.fetchval(
                "INSERT INTO venues (name, city, lat, lon, seat_map, capacity)"
                " VALUES ('CPU Hall', 'Lisbon', 38.7, -9.1, '{}'::jsonb, $1) RETURNING id",
                count,
            )
            performer = await conn.fetchval(
                "INSERT INTO performers (name) VALUES ('The Clocks') RETURNING id"
            )
            event = await conn.fetchval(
                "INSERT INTO events (name, starts_at, venue_id, performer_id, currency)"
                " VALUES ('CPU Night', now() + interval '30 days', $1, $2, 'EUR') RETURNING id",
                venue,
                performer,
            )
            await conn.copy_records_to_table(
                "tickets",
                columns=("event_id", "section", "row", "number", "price_cents"),
                records=[
                    (event, "A", str(1 + n // 100), 1 + n % 100, PRICE_CENTS) for n in range(count)
                ],
            )
            tickets = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM tickets WHERE event_id = $1 ORDER BY id", event
                )
            ]
            holds = [(uuid.uuid4(), f"cpu-fan-{n:06d}", t) for n, t in enumerate(tickets)]
            await conn.copy_records_to_table(
                "holds",
                columns=(
                    "id",
                    "event_id",
                    "user_id",
                    "status",
                    "amount_cents",
                    "currency",
                    "expires_at",
                    "ticket_ids",
                ),
                records=[
                    (h, event, user, "held", PRICE_CENTS, "EUR", _an_hour_from_now(), [t])
                    for h, user, t in holds
                ],
            )
            await conn.execute(
                "UPDATE tickets t SET status = 'reserved', hold_id = h.id FROM holds h"
                " WHERE h.event_id = $1 AND t.id = h.ticket_ids[1]",
                event,
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return [(str(h), user) for h, user, _ in holds]


def _an_hour_from_now() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


async def send_confirms(settings: Settings, holds: list[tuple[str, str]], within: float) -> dict:
    """Every hold's CONFIRM at once, one message each as the front door sends it (signed);
    returns the count of answers by status once each has one."""
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        replies = await channel.declare_queue(exclusive=True, auto_delete=True)
        waiting = {}
        statuses: dict[int, int] = {}
        done = asyncio.Event()

        async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            body = orjson.loads(message.body)
            answers = body.get("replies", [{"correlation_id": message.correlation_id, **body}])
            for answer in answers:
                if waiting.pop(answer["correlation_id"], None) is not None:
                    statuses[answer["status"]] = statuses.get(answer["status"], 0) + 1
            if not waiting:
                done.set()

        await replies.consume(on_reply)
        exchange = await channel.get_exchange(BOOKING_EXCHANGE)
        for hold_id, user in holds:
            request_id = uuid.uuid4().hex
            waiting[request_id] = hold_id
            command = Confirm(
                request_id=request_id, user_id=user, hold_id=hold_id, payment_method=VISA
            ).to_wire()
            command["sent_at"] = time.time()
            body = orjson.dumps(command)
            await exchange.publish(
                aio_pika.Message(
                    body,
                    correlation_id=request_id,
                    reply_to=replies.name,
                    content_type="application/json",
                    headers={SIGNATURE_HEADER: command_signature(settings.command_secret, body)},
                ),
                routing_key=PAYMENTS_ROUTING_KEY,
            )
        try:
            await asyncio.wait_for(done.wait(), within)
        except TimeoutError:
            unanswered = f"bench: {len(waiting)} confirm(s) unanswered after {within:.0f}s"
            raise SystemExit(unanswered) from None
        return statuses


def probe(tree: Path, env: dict[str, str], count: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(count)],
        cwd=tree,
        env={**env, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"bench: the charge probe failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def take_lock(database_url: str, wait: float) -> RunLock:
    deadline = time.monotonic() + wait
    while True:
        try:
            return RunLock(database_url).__enter__()
        except SystemExit as exc:
            if time.monotonic() > deadline:
                raise
            say(f"{exc}; waiting")
            time.sleep(10)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TICKETING_ENV", "dev")  # a bench runs a development stack
    base = Settings.from_env()
    settings = confirm_settings(base, NAME)
    tree = Path(args.tree).resolve()
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    user = urlsplit(settings.amqp_url).username or "guest"
    procs = ProcessGroups()
    lock = take_lock(settings.database_url, args.wait_for_lock)
    try:
        say(f"recreating {NAME}: {args.warmup + args.confirms:,} held seats")
        holds = asyncio.run(create_holds(settings.database_url, args.warmup + args.confirms))
        create_vhost(NAME, user)
        env = service_env(settings)
        env["TICKETING_STRIPE_LATENCY_MS"] = str(args.latency_ms)
        state = RUN_DIR / "localstripe" / "state.pickle"
        state.parent.mkdir(parents=True, exist_ok=True)
        state.unlink(missing_ok=True)
        procs.start(
            "localstripe",
            [sys.executable, "-m", "deploy.localstripe_server", "--from-scratch"],
            {**env, "TICKETING_LOCALSTRIPE_STATE": str(state)},
            RUN_DIR / "localstripe.log",
        )
        stripe = settings.stripe_api_base
        wait_for("localstripe", lambda: http_get(stripe + "/v1/payment_intents")[0] == 401, 30)
        worker_env = {**env, "PYTHONPATH": str(tree)}
        if args.stages:
            worker_env["TICKETING_BOOKING_STAGES"] = args.stages
        with (RUN_DIR / "booking_worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "booking_worker"],
                cwd=tree,
                env=worker_env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        procs.started.append(("booking_worker", worker))
        asyncio.run(wait_for_consumers(settings.amqp_url, BOOKING_PAYMENTS_QUEUE, 1, 60))
        say(f"worker pid {worker.pid} from {tree}; {args.warmup} warm-up confirms")
        warm = asyncio.run(send_confirms(settings, holds[: args.warmup], 300))
        time.sleep(1.0)  # the warm-up's last replies and logs are written
        procs.check_alive()
        say(f"{args.confirms} measured confirms, all sent at once")
        servers = {"postgres": pids_named("postgres"), "rabbitmq": pids_named("beam.smp")}
        servers_cpu = {k: clock_ticks(v) for k, v in servers.items()}
        cpu = clock_ticks([worker.pid])
        started = time.monotonic()
        statuses = asyncio.run(send_confirms(settings, holds[args.warmup :], 600))
        wall = time.monotonic() - started
        cpu = clock_ticks([worker.pid]) - cpu
        # The machine's shared servers: other work on them counts too (an upper bound).
        servers_cpu = {k: clock_ticks(v) - servers_cpu[k] for k, v in servers.items()}
        procs.check_alive()
        booked = asyncio.run(_count_bookings(settings.database_url))
        probed = probe(tree, env, args.probe) if args.probe else None
    finally:
        procs.stop_all()
        delete_vhost(NAME)
        lock.__exit__(None, None, None)
    ok = statuses == {201: args.confirms} and warm == {201: args.warmup}
    ok = ok and booked == args.confirms + args.warmup
    print(f"tree: {tree}")
    print(f"stages: {args.stages or '(the tree default)'}, provider latency: {args.latency_ms} ms")
    print(f"answers: warm-up {warm}, measured {statuses}; bookings confirmed: {booked:,}")
    print(
        f"worker CPU: {cpu:.2f} s for {args.confirms} confirms = "
        f"{1000 * cpu / args.confirms:.2f} ms per confirm (wall {wall:.2f} s, "
        f"{args.confirms / wall:.0f} confirms/s)"
    )
    if probed:
        print(
            f"Payments.charge alone: {1000 * probed['cpu_seconds'] / probed['charges']:.2f} ms "
            f"CPU per charge ({probed['charges']} one after another, "
            f"{1000 * probed['wall_seconds'] / probed['charges']:.2f} ms wall each)"
        )
    print(
        "server CPU over the same window (the machine's shared servers): "
        + ", ".join(f"{k} {1000 * v / args.confirms:.2f} ms" for k, v in servers_cpu.items())
        + " per confirm"
    )
    print("OK" if ok else "FAIL: not every confirm booked")
    if args.summary:
        figures = {
            "confirms": args.confirms,
            "wall_seconds": wall,
            "cpu": {"booking_worker": cpu, **servers_cpu},
            "ok": ok,
        }
        args.summary.write_text(json.dumps(figures, indent=1))
    return 0 if ok else 1


async def _count_bookings(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM bookings WHERE status = 'confirmed'")
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/confirm_cpu.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--confirms", type=int, default=500, help="measured confirms")
    parser.add_argument("--summary", type=Path, help="also write the figures here (JSON)")
    parser.add_argument("--warmup", type=int, default=50, help="confirms before measuring")
    parser.add_argument("--latency-ms", type=int, default=0, help="localstripe's simulated latency")
    parser.add_argument("--stages", default="", help="TICKETING_BOOKING_STAGES for the worker")
    parser.add_argument("--tree", default=str(ROOT), help="the checkout whose worker runs")
    parser.add_argument("--probe", type=int, default=300, help="charges of the probe (0: none)")
    parser.add_argument("--wait-for-lock", type=float, default=0, metavar="SECONDS")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
