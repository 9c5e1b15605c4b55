"""The on-sale benchmark's fans: one load process of them, over the public API, through
the gateway.

    python bench/onsale_load.py SPEC.json RESULT.json

bench/onsale.py starts several of these and drives them with one line on stdin each:

    (start)        mint the fans' dev tokens locally; print "ready"
    go ON_SALE_AT  the fans set out: those of the pre-queue join at once (before on-sale),
                   the others at on-sale plus their arrival second; a load process prints
                   "done" once each of its fans is finished (booked, held, told sold_out,
                   left the line or abandoned)
    stop           stop the fans still out (their record says where they were), write
                   RESULT.json, exit

A fan joins (POST /queue/{id}/join), follows the queue over its websocket (``?token=``,
which TICKETING_ENV=dev accepts; it polls GET /queue/{id}/status every SPEC poll_seconds
when the socket is refused or closes), and once admitted reserves 1-4 best-available seats
with its admission token, then pays (POST /booking/confirm; a "decline_first" fan first
pays with a card that is declined, hears 402 and pays again with a good one). An "abandon"
fan stops once admitted; a "leave" fan leaves the line (POST /queue/{id}/leave) after its
``leave_after`` seconds of waiting. Without SPEC pay, fans stop once they hold seats (the
reserve-only baseline). Every answer 429 or 503 is retried after its Retry-After, with the
same Idempotency-Key, and so are the gateway's 502 and 504 (no backend answered) after a
second. A fan told ``not_in_queue`` (its place lost), ``session_ended`` for the reason
``lost`` (the queue lost its state) or ``admission_invalid`` (its admission ended before
it reserved) joins again, as the answers say, up to MAX_REJOINS times (SPEC max_rejoins),
sending back the latest ``queue_ticket`` a join, status or push gave it, as the queue page
does (waitingroom/static/queue.js): should the queue have lost its place, the ticket asks
for it back (a ticket refused with 400 or 403: joins afresh). A confirm answered ``409
payment_in_progress`` (another copy of the payment is with the provider) is asked again a
second later with the same Idempotency-Key. The line's HTTP requests in flight (join,
status, leave) are bounded (SPEC concurrency), and so are websocket handshakes (SPEC
ws_concurrency); a purchase's (reserve, confirm) are not: an admitted fan's browser does
not wait for other fans' answers (when they waited their turn, up to 20 s went by between
an admission and its reserve in the paid on-sale, a wait no figure counted); a fan holds
its socket while it waits, and once told ``sold_out`` keeps it open, reading what comes,
until the run stops: the queue page does the same (seats may come back, and it would hear
so).

A load process runs its whole on-sale with Python's cyclic garbage collector off. Each
holds thousands of fans (their sockets, tasks, records): a full collection of that heap
stops the process for a long time (the result gives what one took at the end, and the
pauses of the collections made before the go), and every fan of the process would hear
everything that much later, a pause of the load generator's that a fan's own device
never has. (The waitingroom keeps its pauses short with gc.freeze, see
waitingroom/queue/socket_heap.py.)

Latency is client side, from just before a request is written to the last byte of its
answer, of every answer. Times a fan heard something (joined, admitted, sold_out) are wall
clock (time.time()), to set against the database's timestamps on the same machine.

For bench/chaos.py, SPEC ``timeline`` also records every answer's time, route and status,
each fan's admissions (heard, and the ``exp`` of the admission token: the session's end,
which says when the server admitted it) and the places its queue tickets named (when the
place changed), and
SPEC ``reconnect_socket`` has a fan whose socket closed or was refused open it again
after 2, 4, 8... (at most 30) seconds, polling meanwhile, and SPEC ``backoff`` has it wait
1, 2, 4... (at most 30) seconds before asking again after an answer without Retry-After
(the gateway's 502, no answer at all), both as the queue page does; without them a fan
polls once its socket is gone and asks again after a second, as the on-sale's figures
were measured.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
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

from ticketing.auth import issue_dev_token  # noqa: E402
from ticketing.config import Settings  # noqa: E402
from ticketing.web import use_uvloop  # noqa: E402

# 429 and 503 say when to come back; 502 and 504 are the gateway finding no backend
# answering, which a fan retries too (each is counted as the 5xx it is).
RETRIED = (429, 502, 503, 504)
MAX_ATTEMPTS = 30  # of one request, RETRIED retried
MAX_REJOINS = 3  # joins again after a lost place or an admission that ended unused
CONNECT_POLL_SECONDS = 5.0  # a socket not open by then: poll meanwhile (queue.js CONNECT_MS)
RESERVE_ATTEMPTS = 4  # a fan told 409 tickets_unavailable asks again, for fewer seats
GOOD_CARD = "pm_card_visa"
DECLINED_CARD = "pm_card_chargeCustomerFail"


class Stopped(Exception):
    """The run is over for this fan."""


class Fans:
    def __init__(self, spec: dict[str, Any]) -> None:
        settings = Settings.from_env()
        self.spec = spec
        self.base = spec["gateway"]
        self.ws_base = self.base.replace("http://", "ws://", 1)
        self.event_id = spec["event_id"]
        self.queue = f"{self.base}/queue/{self.event_id}"
        self.tokens = {
            user: issue_dev_token(settings, user, [])["access_token"] for user, *_ in spec["fans"]
        }
        self.records: dict[str, dict[str, Any]] = {}
        self.latencies: dict[str, list[float]] = {}
        self.statuses: dict[str, Counter] = {}
        self.samples: dict[str, str] = {}
        self.answers_409: list[float] = []  # wall clock of each 409 tickets_unavailable
        self.lags_ms: list[float] = []  # see loop_lag
        self.ws = Counter()
        self.lingering: set[asyncio.Task[None]] = set()  # sockets of fans told sold_out
        self.http_gate = asyncio.Semaphore(spec["concurrency"])
        self.ws_gate = asyncio.Semaphore(spec["ws_concurrency"])
        self.tickets: dict[str, str] = {}  # each fan's latest queue_ticket
        self.max_rejoins = int(spec.get("max_rejoins", MAX_REJOINS))
        self.reconnect = bool(spec.get("reconnect_socket", False))
        self.backoff = bool(spec.get("backoff", False))
        # (wall clock, route, status) of every answer, for bench/chaos.py
        self.timeline: list[tuple[float, str, int]] | None = [] if spec.get("timeline") else None
        self.gc_pauses_ms: list[float] = []  # collections while the collector was on
        self.full_gc_ms: float | None = None  # one full collection of the heap at the end
        self._gc_began = 0.0
        gc.callbacks.append(self._gc_timer)

    def _gc_timer(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
        elif info["generation"] == 2 and gc.isenabled():  # not the measuring one at the end
            self.gc_pauses_ms.append((time.perf_counter() - self._gc_began) * 1000)

    async def run(self) -> None:
        lean = {
            "cookie_jar": aiohttp.DummyCookieJar(),
            "skip_auto_headers": ("User-Agent",),
        }
        timeout = aiohttp.ClientTimeout(total=self.spec["request_timeout"])
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=timeout, **lean
            ) as self.http,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), **lean) as self.wss,
        ):
            say("ready")
            line = await read_line()
            if not line.startswith("go "):
                raise SystemExit(f"onsale_load: expected 'go ON_SALE_AT', got {line!r}")
            on_sale_at = float(line.split()[1])
            gc.disable()  # see the module's docstring
            tasks = [
                asyncio.create_task(self.fan(user, kind, quantity, arrival, leave, on_sale_at))
                for user, kind, quantity, arrival, leave in self.spec["fans"]
            ]
            ticker = asyncio.create_task(self.loop_lag())
            stop = asyncio.create_task(read_line())
            everyone = asyncio.gather(*tasks)
            finished, _ = await asyncio.wait({stop, everyone}, return_when=asyncio.FIRST_COMPLETED)
            if everyone in finished:
                everyone.result()  # a fan's bug is the bench's: surface it
                say("done")
                line = await stop
            else:
                line = stop.result()
            if line != "stop":
                raise SystemExit(f"onsale_load: expected 'stop', got {line!r}")
            for task in [*tasks, ticker, *self.lingering]:
                task.cancel()
            await asyncio.gather(*tasks, ticker, *self.lingering, return_exceptions=True)
            began = time.perf_counter()
            gc.collect()  # what the collector would have stopped the fans for, at most
            self.full_gc_ms = (time.perf_counter() - began) * 1000
            gc.enable()

    async def loop_lag(self) -> None:
        """How late this process's event loop runs (a sleep's overshoot, every 100 ms): the
        fans' clocks, and their notices' times, are at most this late."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + 0.1
            await asyncio.sleep(0.1)
            self.lags_ms.append((loop.time() - asked) * 1000)

    # -- one fan -------------------------------------------------------------------------

    async def fan(
        self,
        user: str,
        kind: str,
        quantity: int,
        arrival: float | None,
        leave_after: float,
        on_sale_at: float,
    ) -> None:
        rec: dict[str, Any] = {
            "user": user,
            "kind": kind,
            "quantity": quantity,
            "pre": arrival is None,
            "outcome": None,
            "last_status": None,
            "saw_all_held": False,
            "joined_at": None,
            "admitted_at": None,
            "sold_out_at": None,
            "eta": None,  # eta_seconds at join, or the first one heard after the draw
            "eta_at": None,
            "ticket_ids": [],
        }
        self.records[user] = rec
        try:
            if arrival is not None:
                await asyncio.sleep(max(0.0, on_sale_at + arrival - time.time()))
            rec["join_sent"] = time.time()
            body = await self.join(rec)
            if body is None:
                return
            rec["joined_at"] = time.time()
            rec["join_status"] = body.get("status")
            rec["eta"] = body.get("eta_seconds")
            rec["eta_at"] = rec["joined_at"] if rec["eta"] is not None else None
            rec["position"] = body.get("position")
            leave_at = rec["joined_at"] + leave_after if kind == "leave" else None
            for _ in range(self.max_rejoins + 1):
                token = await self.follow(rec, body, leave_at)
                if token is None:
                    return
                if kind in ("abandon", "leave"):  # a leaver admitted before leaving goes too
                    rec["outcome"] = "abandoned"
                    return
                if not await self.buy(rec, token):
                    return
                # The admission ended before the fan used it: "join the queue again".
                body = await self.join(rec)
                if body is None:
                    return
            rec["outcome"] = "failed:admission_ended_every_time"
        except asyncio.CancelledError:  # stopped: the record says how far the fan got
            rec["stopped_at"] = time.time()

    async def join(self, rec: dict[str, Any]) -> dict | None:
        """POST /queue/{id}/join (again, after a lost place); its status, or None with the
        fan's outcome set when it failed."""
        user = rec["user"]
        if rec["joined_at"] is not None:
            rec["rejoins"] = rec.get("rejoins", 0) + 1
        ticket = self.tickets.get(user)
        sent = {"queue_ticket": ticket} if ticket else None
        status, body = await self.request("join", "POST", f"{self.queue}/join", user, sent)
        if ticket and status in (400, 403):  # not a ticket of ours any more: join afresh
            self.tickets.pop(user, None)
            status, body = await self.request("join", "POST", f"{self.queue}/join", user)
        if status != 200:
            rec["outcome"] = f"failed:join_{status}"
            return None
        rec["last_joined_at"] = time.time()
        self.note_ticket(rec, body)
        return body

    def heard(self, rec: dict[str, Any], what: str) -> None:
        """With a timeline, note what made the fan change course (a session_ended, a socket
        closed or refused, a not_in_queue), for bench/chaos_cluster.py's fan records."""
        if self.timeline is not None:
            rec.setdefault("heard", []).append([round(time.time(), 3), what])

    def note_ticket(self, rec: dict[str, Any], body: dict) -> None:
        """Keep the fan's latest queue ticket; with a timeline, note where it stands
        (where, place, epoch: the ticket's claims) each time that changes."""
        ticket = body.get("queue_ticket")
        user = rec["user"]
        if not ticket or ticket == self.tickets.get(user):
            return
        self.tickets[user] = ticket
        if self.timeline is None:
            return
        claims = ticket_claims(ticket)
        stands = [claims.get("where"), claims.get("place"), claims.get("epoch")]
        log = rec.setdefault("tickets", [])
        if not log or log[-1][1:] != stands:
            log.append([round(time.time(), 3), *stands])

    async def follow(  # noqa: C901 - a fan's whole wait, top to bottom; split when the bench can re-run
        self,
        rec: dict[str, Any],
        body: dict,
        leave_at: float | None,
        *,
        wait_sold_out: bool = False,
    ) -> str | None:
        """Until the fan is admitted (its admission token), told sold_out, or leaves (None).
        ``wait_sold_out``: an admitted fan who found nothing to reserve waits for the truth
        (sold_out), polling its status. A fan told it is not in the queue (any more: a
        fan unseen for TICKETING_QUEUE_ABANDON_SECONDS loses its place) joins again."""
        user = rec["user"]
        ws: aiohttp.ClientWebSocketResponse | None = None
        refused = wait_sold_out
        failures, retry_at = 0, None  # of the socket, with SPEC reconnect_socket
        try:
            while True:
                self.note_ticket(rec, body)
                status = body.get("status") or body.get("type")
                if status and status not in ("resumed",):
                    rec["last_status"] = status
                if status == "all_held":
                    rec["saw_all_held"] = True
                if rec["eta"] is None and body.get("eta_seconds") is not None:
                    # The pre-queue's first estimate comes once its place is drawn.
                    rec["eta"], rec["eta_at"] = body["eta_seconds"], time.time()
                if status == "admitted" and not wait_sold_out:
                    token = body.get("admission_token")
                    if token:
                        rec["admitted_at"] = rec["admitted_at"] or time.time()
                        rec["last_admitted_at"] = time.time()
                        if self.timeline is not None:
                            rec.setdefault("admissions", []).append(round(time.time(), 3))
                            # the session's end, whole seconds: when the server admitted
                            exp = ticket_claims(token).get("exp")
                            rec.setdefault("admission_exps", []).append(exp)
                        return token
                if status == "sold_out":
                    rec["sold_out_at"] = time.time()
                    rec["outcome"] = "sold_out"
                    if ws is not None:
                        self.linger(ws)
                        ws = None
                    return None
                if status == "session_ended":
                    self.heard(rec, f"session_ended:{body.get('reason')}")
                if status == "session_ended" and body.get("reason") == "lost":
                    # The queue lost its state, not the fan its place: the page joins again
                    # at once with its ticket (waitingroom/static/queue.js).
                    body = {"code": "not_in_queue"}
                if body.get("code") == "not_in_queue":
                    self.heard(rec, "not_in_queue")
                    if rec.get("rejoins", 0) >= self.max_rejoins:
                        rec["outcome"] = "failed:lost_place_every_time"
                        return None
                    if ws is not None:  # told over it: the new place gets a new socket
                        await ws.close()
                        ws = None
                    joined = await self.join(rec)
                    if joined is None:
                        return None
                    body, refused = joined, wait_sold_out  # a new place: a new socket
                    continue
                now = time.time()
                if leave_at is not None and now >= leave_at:
                    answer, _ = await self.request("leave", "POST", f"{self.queue}/leave", user)
                    rec["outcome"] = "left" if answer in (200, 204) else f"failed:leave_{answer}"
                    return None
                until_leave = None if leave_at is None else leave_at - now
                if refused and retry_at is not None and now >= retry_at:
                    refused, retry_at = False, None  # the page tries its socket again
                if ws is None and not refused:
                    ws, answer, polled = await self.connect(rec)
                    if polled is not None:  # not in the queue, admitted or sold out meanwhile
                        body = polled
                        continue
                    refused = ws is None
                    if refused:
                        self.heard(rec, f"ws_refused:{answer}")
                    if answer == 404:  # not in the queue (any more)
                        body = {"code": "not_in_queue"}
                        continue
                    failures = 0 if ws is not None else failures + 1
                    if ws is None and self.reconnect:
                        retry_at = now + min(30, 2**failures)
                if ws is not None:
                    try:
                        message = await ws.receive(timeout=until_leave)
                    except TimeoutError:
                        body = {}
                        continue
                    except aiohttp.ClientConnectionError:
                        # The pong to a ping that came as the socket closed could not be
                        # written: the socket is gone, as when the server closes it.
                        message = None
                    if message is not None and message.type == aiohttp.WSMsgType.TEXT:
                        body = json.loads(message.data)
                        continue
                    self.ws["closed_by_server"] += 1
                    self.heard(rec, "ws_closed")
                    ws = None
                    refused = True  # poll from now on (or until the socket is tried again)
                    if self.reconnect:
                        failures += 1
                        retry_at = time.time() + min(30, 2**failures)
                    body = {}
                    continue
                pause = self.spec["poll_seconds"]
                await asyncio.sleep(pause if until_leave is None else min(pause, until_leave))
                answer, body = await self.request("status", "GET", f"{self.queue}/status", user)
        finally:
            if ws is not None:
                await ws.close()

    def linger(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Keep a sold-out fan's socket open, as the queue page does, reading (and so
        answering pings) until the server closes it or the run stops."""

        async def read_until_closed() -> None:
            try:
                async for _ in ws:
                    pass
            finally:
                await ws.close()

        task = asyncio.create_task(read_until_closed())
        self.lingering.add(task)
        task.add_done_callback(self.lingering.discard)

    async def connect(
        self, rec: dict[str, Any]
    ) -> tuple[aiohttp.ClientWebSocketResponse | None, int, dict | None]:
        """open_socket() as the queue page opens one: while it is not open
        CONNECT_POLL_SECONDS after it was asked for (a busy server, a failover holding the
        handshake, or this process's handshake gate), the fan polls its status every
        poll_seconds, so that the queue still sees it. (the socket or None, the
        handshake's answer, None) or, when a poll ends the wait (not in the queue,
        admitted, sold out), (None, its answer, its body)."""
        user = rec["user"]
        opening = asyncio.ensure_future(self.open_socket(user))
        try:
            done, _ = await asyncio.wait({opening}, timeout=CONNECT_POLL_SECONDS)
            if not done:
                self.heard(rec, "ws_slow")
            while not done:
                answer, body = await self.request("status", "GET", f"{self.queue}/status", user)
                self.note_ticket(rec, body)
                if answer == 404 or body.get("status") in ("admitted", "sold_out"):
                    opening.cancel()
                    await asyncio.wait({opening})
                    if not opening.cancelled() and (late := opening.result()[0]) is not None:
                        await late.close()
                    return None, answer, body
                done, _ = await asyncio.wait({opening}, timeout=self.spec["poll_seconds"])
        finally:
            if not opening.done():
                opening.cancel()
        ws, answer = opening.result()
        return ws, answer, None

    async def open_socket(self, user: str) -> tuple[aiohttp.ClientWebSocketResponse | None, int]:
        """(the socket, 101), or (None, the handshake's answer: 0 when none came)."""
        url = f"{self.ws_base}/queue/{self.event_id}/ws?token={self.tokens[user]}"
        async with self.ws_gate:
            began = time.perf_counter()
            try:
                async with asyncio.timeout(30):
                    ws = await self.wss.ws_connect(url, autoping=True)
            except aiohttp.WSServerHandshakeError as exc:
                self.count("ws", exc.status, began, repr(exc))
                self.ws["refused"] += 1
                return None, exc.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.count("ws", 0, began, repr(exc))
                self.ws["failed"] += 1
                return None, 0
        self.count("ws", 101, began, "")
        self.ws["opened"] += 1
        return ws, 101

    async def buy(self, rec: dict[str, Any], token: str) -> bool:  # noqa: C901 - reserve then pay, as a fan does; split with follow()
        """Reserve, then pay (or not, reserve-only); True when the admission turned out to
        have ended, so the fan must join again."""
        user, quantity = rec["user"], rec["quantity"]
        hold = None
        for attempt in range(RESERVE_ATTEMPTS):
            status, body = await self.request(
                "reserve",
                "POST",
                f"{self.base}/booking/reserve",
                user,
                {"event_id": self.event_id, "quantity": quantity},
                {"X-Admission-Token": token, "Idempotency-Key": f"{user}-reserve-{attempt}"},
                gated=False,
            )
            if status == 201:
                hold = body
                break
            code = body.get("code")
            if status == 403 and code in ("admission_invalid", "admission_required"):
                rec["admission_ended"] = rec.get("admission_ended", 0) + 1
                return True
            if status != 409 or code != "tickets_unavailable":
                rec["outcome"] = f"failed:reserve_{status}_{code}"
                return False
            self.answers_409.append(time.time())
            # Nothing for this many: is anything left at all?
            answer, queued = await self.request("status", "GET", f"{self.queue}/status", user)
            if answer == 200 and queued.get("status") == "sold_out":
                rec["last_status"] = "sold_out"
                rec["sold_out_at"] = time.time()
                rec["outcome"] = "sold_out"
                return False
            quantity = max(1, quantity // 2)
            await asyncio.sleep(1.0)
        if hold is None:
            # Admitted to nothing: the fan waits to be told the truth.
            rec["last_status"] = "admitted_without_seats"
            await self.follow(rec, {}, None, wait_sold_out=True)
            return False
        rec["hold_id"] = hold["hold_id"]
        rec["held_at"] = time.time()
        rec["ticket_ids"] = [t["id"] for t in hold["tickets"]]
        if not self.spec["pay"]:
            rec["outcome"] = "held"
            return False
        cards = [DECLINED_CARD, GOOD_CARD] if rec["kind"] == "decline_first" else [GOOD_CARD]
        cards += [GOOD_CARD] * 2  # a good card declined (it should not be) is tried again
        for attempt, card in enumerate(cards):
            for _ in range(MAX_ATTEMPTS):
                status, body = await self.request(
                    "confirm",
                    "POST",
                    f"{self.base}/booking/confirm",
                    user,
                    {"hold_id": hold["hold_id"], "payment_method": card},
                    {"Idempotency-Key": f"{user}-confirm-{attempt}"},
                    gated=False,
                )
                if status != 409 or body.get("code") != "payment_in_progress":
                    break
                await asyncio.sleep(1.0)  # "retry shortly": the same payment's outcome
            if status == 201:
                rec["outcome"] = "booked"
                rec["booked_at"] = time.time()
                rec["booking_id"] = body["booking_id"]
                rec["ticket_ids"] = [t["id"] for t in body["tickets"]]
                return False
            if status == 402:
                rec.setdefault("declined", []).append(card)
                continue
            rec["outcome"] = f"failed:confirm_{status}_{body.get('code')}"
            return False
        rec["outcome"] = "failed:confirm_declined"
        return False

    # -- requests ------------------------------------------------------------------------

    async def request(
        self,
        route: str,
        method: str,
        url: str,
        user: str,
        body: object = None,
        headers: dict[str, str] | None = None,
        *,
        gated: bool = True,
    ) -> tuple[int, dict]:
        """One request, retried after Retry-After (1 s without one) while answered RETRIED
        or not at all; (status, JSON body or {}) of the last answer. ``gated``: it waits its
        turn at SPEC concurrency (the line's requests); a purchase's do not (see buy)."""
        sent = {"Authorization": "Bearer " + self.tokens[user], **(headers or {})}
        for attempt in range(MAX_ATTEMPTS):
            async with self.http_gate if gated else contextlib.nullcontext():
                began = time.perf_counter()
                try:
                    async with self.http.request(method, url, json=body, headers=sent) as resp:
                        raw = await resp.read()
                        status = resp.status
                        retry_after = resp.headers.get("Retry-After")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raw, status, retry_after = repr(exc).encode(), 0, None
            self.count(route, status, began, raw[:300].decode(errors="replace"))
            if status not in RETRIED and status != 0:
                try:
                    return status, json.loads(raw) if raw else {}
                except ValueError:
                    return status, {}
            backoff = min(30.0, 2.0**attempt) if self.backoff else 1.0
            await asyncio.sleep(retry_seconds(retry_after, backoff))
        return status, {}

    def count(self, route: str, status: int, began: float, sample: str) -> None:
        self.latencies.setdefault(route, []).append((time.perf_counter() - began) * 1000)
        if self.timeline is not None:
            self.timeline.append((round(time.time(), 3), route, status))
        self.statuses.setdefault(route, Counter())[status] += 1
        if status not in (101, 200, 201, 204):
            self.samples.setdefault(f"{route} {status}", sample)

    def result(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "fans": list(self.records.values()),
            "latencies_ms": self.latencies,
            "statuses": {route: dict(c) for route, c in self.statuses.items()},
            "samples": self.samples,
            "answers_409": self.answers_409,
            "loop_lag_ms": self.lags_ms,
            "gc_pauses_ms": self.gc_pauses_ms,
            "full_gc_ms": self.full_gc_ms,
            "max_rss_mb": usage.ru_maxrss / 1024,
            "ws": dict(self.ws),
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            **({"timeline": self.timeline} if self.timeline is not None else {}),
        }


def ticket_claims(ticket: str) -> dict[str, Any]:
    """A token's claims (a queue ticket's, an admission token's), read without checking
    its signature (the fan's own, from the server): {} when unreadable."""
    try:
        payload = ticket.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def retry_seconds(header: str | None, otherwise: float = 1.0) -> float:
    """Retry-After in seconds (at most 10), ``otherwise`` when absent or unreadable."""
    try:
        return min(10.0, max(0.1, float(header))) if header else otherwise
    except ValueError:
        return otherwise


def say(line: str) -> None:
    print(line, flush=True)


async def read_line() -> str:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip()


def main() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = json.loads(Path(sys.argv[1]).read_text())
    use_uvloop()
    fans = Fans(spec)
    asyncio.run(fans.run())
    Path(sys.argv[2]).write_text(json.dumps(fans.result()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
