"""The surge benchmark's load generator: one process of fans, through the gateway.

    python bench/surge_load.py SPEC.json RESULT.json

bench/surge.py starts several of these (a process holds at most about 15,000 sockets under
the 20,000 open-file cap) and drives them in steps, one line on stdin each, so every
process starts each step at once:

    (start)  mint the fans' dev tokens locally, warm a keep-alive pool up on the hello route
             and the join route (warm-up fans join, then leave); print "ready"
    hello    GET the hello-world route for the given seconds, closed loop; "hello-done"
    join     every fan POSTs /queue/{id}/join on the keep-alive pool (closed loop, the same
             concurrency as hello); "joined"
    hello-after  hello world again, for its own seconds; "hello-after-done"
    open     every fan opens GET /queue/{id}/ws and keeps it, listening; "opened {...}"
             once every socket is open (or failed)
    stop     close the sockets, write RESULT.json, exit

Latency is client side, from just before a request is written to the last byte of its
answer. Every "admitted" push is stamped with the wall clock when it arrived, to set
against the admission time the admitters announce (bench/surge_setup.Admissions).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.surge_hello import HELLO_PATH  # noqa: E402
from ticketing.auth import issue_dev_token  # noqa: E402
from ticketing.config import Settings  # noqa: E402
from ticketing.web import use_uvloop  # noqa: E402


class Fans:
    def __init__(self, spec: dict[str, Any]) -> None:
        settings = Settings.from_env()
        self.spec = spec
        self.base = spec["gateway"]
        self.ws_base = self.base.replace("http://", "ws://", 1)
        self.event_id = spec["event_id"]
        self.tokens = {
            user: issue_dev_token(settings, user, [])["access_token"]
            for user in spec["fans"] + spec.get("warmup_fans", [])
        }
        self.fans = spec["fans"]
        self.result: dict[str, Any] = {
            "hello": {"statuses": Counter(), "latencies_ms": []},
            "hello_after": {"statuses": Counter(), "latencies_ms": []},
            "join": {"statuses": Counter(), "latencies_ms": [], "samples": {}},
            "ws": {
                "opened": 0,
                "failed": 0,
                "handshake_ms": [],
                "samples": {},
                "closed_early": 0,
                "pushes": Counter(),
            },
            "admitted_at": {},
            "opened_at": {},
        }
        self.sockets: set[aiohttp.ClientWebSocketResponse] = set()
        self.listeners: set[asyncio.Task[None]] = set()
        self.stopping = False

    async def run(self) -> None:
        # One pool for the requests (the fan coroutines are its limit, each keeps one
        # connection alive), and every websocket on its own connection. The client shares
        # the two cores with what it measures: no cookies, decompression or default headers.
        lean = {
            "cookie_jar": aiohttp.DummyCookieJar(),
            "auto_decompress": False,
            "skip_auto_headers": ("User-Agent", "Accept-Encoding"),
        }
        timeout = aiohttp.ClientTimeout(total=self.spec["request_timeout"])
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=timeout, **lean
            ) as http,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), **lean) as ws_session,
        ):
            # Warm-up, not measured: the hello route, and the join route with fans of
            # its own who then leave (so the servers' first joins, their first script
            # loads and connections, are not the surge's).
            await self._loop(http, [(None, f"{self.base}{HELLO_PATH}")] * 50, "hello")
            queue = f"{self.base}/queue/{self.event_id}"
            warm = self.spec.get("warmup_fans", [])
            await self._loop(http, [(user, f"{queue}/join") for user in warm], "join")
            await self._loop(http, [(user, f"{queue}/leave") for user in warm], "join")
            self.result["hello"] = {"statuses": Counter(), "latencies_ms": []}
            self.result["join"] = {"statuses": Counter(), "latencies_ms": [], "samples": {}}
            say("ready")
            await read_line("hello")
            started = time.monotonic()
            await self._loop(http, None, "hello", seconds=self.spec["hello_seconds"])
            self.result["hello"]["seconds"] = time.monotonic() - started
            say("hello-done")
            await read_line("join")
            join = self.result["join"]
            join["started_at"] = time.monotonic()
            url = f"{self.base}/queue/{self.event_id}/join"
            await self._loop(
                http,
                [(user, url) for user in self.fans],
                "join",
                seconds=self.spec["step_seconds"],
            )
            join["finished_at"] = time.monotonic()
            say("joined")
            # Hello world again, right after: the machine's pace can drift between phases
            # (other tenants of the VM), and the joins are set against both measurements.
            await read_line("hello-after")
            started = time.monotonic()
            await self._loop(http, None, "hello_after", seconds=self.spec["hello_after_seconds"])
            self.result["hello_after"]["seconds"] = time.monotonic() - started
            say("hello-after-done")
            await read_line("open")
            await self._open_all(ws_session)
            await read_line("stop")
            self.stopping = True
            await asyncio.gather(*(ws.close() for ws in list(self.sockets)), return_exceptions=True)
            await asyncio.gather(*self.listeners, return_exceptions=True)

    async def _loop(
        self,
        http: aiohttp.ClientSession,
        work: list[tuple[str | None, str]] | None,
        side: str,
        seconds: float = float("inf"),
    ) -> None:
        """``concurrency`` coroutines over ``work`` (or the hello route), each waiting for
        its answer before sending the next: closed loop. Nothing new starts after
        ``seconds`` (work left then is counted as unsent): every step is bounded."""
        tally = self.result[side]
        items = iter(work) if work is not None else None
        deadline = time.monotonic() + seconds
        tally["unsent"] = 0

        async def one_loop() -> None:
            while True:
                if items is None:
                    if time.monotonic() > deadline:
                        return
                    user, url = None, f"{self.base}{HELLO_PATH}"
                else:
                    try:
                        user, url = next(items)
                    except StopIteration:
                        return
                    if time.monotonic() > deadline:
                        tally["unsent"] += 1
                        continue
                headers = {} if user is None else {"Authorization": "Bearer " + self.tokens[user]}
                method = "GET" if user is None else "POST"
                began = time.perf_counter()
                try:
                    async with http.request(method, url, headers=headers) as resp:
                        body = await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    body, status = repr(exc).encode(), 0
                tally["latencies_ms"].append((time.perf_counter() - began) * 1000)
                tally["statuses"][status] += 1
                if status != 200:
                    tally.setdefault("samples", {}).setdefault(status, body[:300].decode())

        await asyncio.gather(*(one_loop() for _ in range(self.spec["concurrency"])))

    async def _open_all(self, session: aiohttp.ClientSession) -> None:
        # Websocket handshakes wait their turn: a burst of thousands at once would only
        # overflow the servers' accept queues and come back as retransmits.
        gate = asyncio.Semaphore(self.spec["ws_concurrency"])
        ws = self.result["ws"]
        ws["started_at"] = time.monotonic()
        tasks = [asyncio.create_task(self._open(session, gate, user)) for user in self.fans]
        progress = asyncio.create_task(self._progress(tasks))
        _, pending = await asyncio.wait(tasks, timeout=self.spec["step_seconds"])
        for task in pending:  # out of time: the rest are counted, not waited for
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        progress.cancel()
        ws["unopened"] = len(pending)
        ws["finished_at"] = time.monotonic()
        say("opened " + json.dumps({k: ws[k] for k in ("opened", "failed", "unopened")}))

    async def _progress(self, tasks: list[asyncio.Task[None]]) -> None:
        """A line in the log every 5 s, so a slow step shows how far it got."""
        started = time.monotonic()
        while True:
            await asyncio.sleep(5)
            done = sum(task.done() for task in tasks)
            print(
                f"{time.monotonic() - started:5.0f} s: {done:,} of {len(tasks):,} sockets "
                f"tried, {len(self.sockets):,} open",
                file=sys.stderr,
                flush=True,
            )

    async def _open(
        self, session: aiohttp.ClientSession, gate: asyncio.Semaphore, user: str
    ) -> None:
        url = f"{self.ws_base}/queue/{self.event_id}/ws?token={self.tokens[user]}"
        tally = self.result["ws"]
        async with gate:
            began = time.perf_counter()
            try:
                async with asyncio.timeout(30):
                    ws = await session.ws_connect(url, autoping=True)
            except (aiohttp.ClientError, TimeoutError) as exc:
                tally["failed"] += 1
                tally["samples"].setdefault(type(exc).__name__, repr(exc)[:300])
                return
            tally["handshake_ms"].append((time.perf_counter() - began) * 1000)
        tally["opened"] += 1
        self.result["opened_at"][user] = time.time()
        self.sockets.add(ws)
        listener = asyncio.create_task(self._listen(ws, user))
        self.listeners.add(listener)

    async def _listen(self, ws: aiohttp.ClientWebSocketResponse, user: str) -> None:
        pushes = self.result["ws"]["pushes"]
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                kind = push_type(message.data)
                pushes[kind] += 1
                if kind == "admitted":
                    self.result["admitted_at"].setdefault(user, time.time())
        finally:
            self.sockets.discard(ws)
            if not self.stopping:
                self.result["ws"]["closed_early"] += 1


def push_type(data: str) -> str:
    """A push's "type", read without parsing the whole status (the server writes it first;
    the load generator shares the cores with what it measures). Compact JSON or not."""
    for first in _TYPE_FIRST:
        if data.startswith(first):
            end = data.find('"', len(first))
            if end > 0:
                return data[len(first) : end]
    return json.loads(data).get("type", "")


_TYPE_FIRST = ('{"type":"', '{"type": "')


def say(line: str) -> None:
    print(line, flush=True)


async def read_line(expected: str) -> None:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != expected:
        raise SystemExit(f"surge_load: expected {expected!r}, got {line.strip()!r}")


def main(kind: type[Fans] | None = None) -> int:
    """A load process: ``kind`` (Fans, or a subclass such as bench/surge_door.py's) run on
    the spec file argv[1], its result, with its CPU seconds, written to argv[2]."""
    spec = json.loads(Path(sys.argv[1]).read_text())
    fans = (kind or Fans)(spec)
    use_uvloop()
    asyncio.run(fans.run())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    fans.result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    Path(sys.argv[2]).write_text(json.dumps(fans.result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
