"""PostgreSQL round trips per confirm: the payments stage's path (apply_unshared ->
confirm_payment) run in this process against a counting proxy in front of PostgreSQL.

    .venv/bin/python bench/confirm_round_trips.py [--confirms 200] [--concurrency 1]
                                                  [--tree DIR]

pg_stat_statements is not installed here, and it would not count BEGIN, COMMIT or the
pool's reset query apart from the rest anyway; the proxy reads the client's side of the
wire instead. Every round trip ends in a message the client then waits on: a Sync (the
extended protocol: prepare, bind/execute, executemany) or a simple Query (BEGIN, COMMIT,
the pool's reset). Each is counted with the statement it carried, so the breakdown shows
where the trips go.

What it does, on 127.0.0.1, cleaned up at the end:

1. recreates its own database (``ticketing_bench_confirm_rt``) with one live hold per seat,
   as bench/confirm_cpu.py does;
2. starts a localstripe of its own (no simulated latency) and the counting proxy;
3. imports booking_worker from --tree (default: this checkout; an exported older commit,
   ``git archive <rev> | tar -x -C DIR``, measures that code) and runs a warm-up, then
   --confirms confirms, --concurrency at a time, each through
   ``booking_worker.commands.apply_unshared`` as the payments stage applies it, with the
   stage's own pool and attempt locks (``payment_resources``);
4. checks every answer is a 201, and prints round trips per confirm, in total and by
   statement.

Counts with --concurrency 1 are exact per confirm; higher concurrency shows what sharing
(the attempt locks' one connection) does to them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import struct
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]

NAME = "ticketing_bench_confirm_rt"
VISA = "pm_card_visa"
_SSL_REQUEST = 80877103
_GSS_REQUEST = 80877104


class CountingProxy:
    """TCP proxy to PostgreSQL that counts the client's round trips by statement."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.trips: Counter[str] = Counter()
        self.counting = False
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        back = asyncio.create_task(_pipe(up_reader, writer))
        try:
            await self._client_to_server(reader, up_writer)
        finally:
            up_writer.close()
            back.cancel()
            writer.close()

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # Untyped startup packets first: an SSL or GSS request (answered with one byte,
        # relayed by the other pipe), then the startup message.
        while True:
            (length,) = struct.unpack("!I", await reader.readexactly(4))
            body = await reader.readexactly(length - 4)
            writer.write(struct.pack("!I", length) + body)
            code = struct.unpack("!I", body[:4])[0]
            if code not in (_SSL_REQUEST, _GSS_REQUEST):
                break
        statements: dict[bytes, str] = {}
        current = "?"
        while True:
            try:
                head = await reader.readexactly(5)
            except asyncio.IncompleteReadError:
                return
            kind, length = head[:1], struct.unpack("!I", head[1:])[0]
            body = await reader.readexactly(length - 4)
            writer.write(head + body)
            await writer.drain()
            if kind == b"P":  # Parse: statement name, query
                name, rest = body.split(b"\0", 1)
                query = rest.split(b"\0", 1)[0].decode()
                statements[name] = query
                current = query
            elif kind == b"B":  # Bind: portal name, statement name
                name = body.split(b"\0", 2)[1]
                current = statements.get(name, current)
            elif kind == b"S":
                self._count(current)
            elif kind == b"Q":
                self._count(body.rstrip(b"\0").decode())
            elif kind == b"X":
                return

    def _count(self, query: str) -> None:
        if self.counting:
            self.trips[" ".join(query.split())[:90]] += 1


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass


def confirm_command(messages: Any, hold_id: str, user: str) -> Any:
    """A CONFIRM as the payments stage is handed it in the measured tree: the typed command
    where the tree has them (``parse_command``), else its wire dict, as that tree's worker
    took it."""
    wire = {
        "type": messages.CONFIRM,
        "v": 1,
        "request_id": uuid.uuid4().hex,
        "user_id": user,
        "roles": [],
        "hold_id": hold_id,
        "payment_method": VISA,
    }
    parse = getattr(messages, "parse_command", None)
    return wire if parse is None else parse(wire)


async def run(args: argparse.Namespace, stripe_port: int) -> int:
    from bench.confirm_cpu import create_holds
    from booking_worker.commands import apply_unshared
    from booking_worker.confirm import (
        close_payment_resources,
        confirm_payment,
        payment_resources,
    )
    from booking_worker.handlers import Context
    from ticketing import messages
    from ticketing.config import Settings
    from ticketing.db import migrate

    os.environ.setdefault("TICKETING_ENV", "dev")  # a bench runs a development stack
    base = Settings.from_env()
    real = urlsplit(base.database_url)
    database_url = urlunsplit(real._replace(path="/" + NAME))
    holds = await create_holds(database_url, args.warmup + args.confirms)
    proxy = CountingProxy((real.hostname or "127.0.0.1", real.port or 5432))
    port = await proxy.start()
    netloc = f"{real.username}@127.0.0.1:{port}" if real.username else f"127.0.0.1:{port}"
    settings = dataclasses.replace(
        base,
        env="dev",
        database_url=urlunsplit(real._replace(netloc=netloc, path="/" + NAME)),
        localstripe_port=stripe_port,
        stripe_api_base=f"http://127.0.0.1:{stripe_port}",
        hold_ttl_seconds=3600,
    )
    ctx = Context(settings)
    try:

        async def confirm(hold_id: str, user: str) -> int:
            command = confirm_command(messages, hold_id, user)
            pool, _ = await payment_resources(ctx)
            outcome = await apply_unshared(ctx, pool, confirm_payment, command)
            return outcome.status

        async def confirm_all(batch: list[tuple[str, str]]) -> Counter[int]:
            statuses: Counter[int] = Counter()
            for i in range(0, len(batch), args.concurrency):
                chunk = batch[i : i + args.concurrency]
                statuses.update(await asyncio.gather(*(confirm(h, u) for h, u in chunk)))
            return statuses

        warm = await confirm_all(holds[: args.warmup])
        proxy.counting = True
        started = time.monotonic()
        statuses = await confirm_all(holds[args.warmup :])
        wall = time.monotonic() - started
        proxy.counting = False
    finally:
        await close_payment_resources(ctx)
        await proxy.close()
        migrate.drop_database(database_url)
    ok = warm == Counter({201: args.warmup}) and statuses == Counter({201: args.confirms})
    total = sum(proxy.trips.values())
    print(f"tree: {args.tree}")
    print(f"answers: warm-up {dict(warm)}, measured {dict(statuses)}")
    print(
        f"round trips: {total} for {args.confirms} confirms, {args.concurrency} at a time ="
        f" {total / args.confirms:.2f} per confirm (wall {wall:.2f} s)"
    )
    for query, count in proxy.trips.most_common():
        print(f"  {count / args.confirms:6.2f}  {query}")
    print("OK" if ok else "FAIL: not every confirm booked")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/confirm_round_trips.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--confirms", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--tree", default=str(ROOT), help="the checkout whose worker code runs")
    args = parser.parse_args(argv)
    tree = Path(args.tree).resolve()
    # The measured tree's code first; bench/ and deploy/ helpers come from it too.
    sys.path.insert(0, str(tree))
    os.chdir(tree)
    from bench.search import free_port, http_get, wait_for

    stripe_port = free_port()
    state = ROOT / ".run" / "bench" / "confirm_rt" / "state.pickle"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.unlink(missing_ok=True)
    env = {**os.environ, "TICKETING_STRIPE_LATENCY_MS": "0"}
    stripe = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploy.localstripe_server",
            "--port",
            str(stripe_port),
            "--state",
            str(state),
            "--from-scratch",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{stripe_port}"
        wait_for("localstripe", lambda: http_get(url + "/v1/payment_intents")[0] == 401, 30)
        return asyncio.run(run(args, stripe_port))
    finally:
        stripe.terminate()
        stripe.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
