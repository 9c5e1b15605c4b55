"""The whole stack as `make run` starts it (deploy/Procfile under honcho), through nginx,
for the end-to-end tests (the ``stack`` fixture in tests/e2e/conftest.py starts one for all).

Everything is real: the processes are the Procfile's own commands, with this run's private
database, Redis prefix, vhost, ports and Typesense data directory, and demo data loaded by
the same loader `make run` uses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.contract import capture
from tests.servers import PG_BASE, REDIS_BASE, RUN_ID
from tests.support import consecutive_free_ports, free_port, wait_until
from ticketing.db import migrate

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
DEMO_EVENTS = 300
WAITINGROOM_PROCESSES = 2
FRONTDOOR_PROCESSES = 1


class Stack:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.base = f"http://127.0.0.1:{env['TICKETING_GATEWAY_PORT']}"
        self.log = workdir / "honcho.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def waitingroom_ports(self) -> list[int]:
        first = int(self.env["TICKETING_WAITINGROOM_PORT"])
        return [first + i for i in range(int(self.env["TICKETING_WAITINGROOM_PROCESSES"]))]

    @property
    def frontdoor_ports(self) -> list[int]:
        first = self.waitingroom_ports[-1] + 1
        return [first + i for i in range(int(self.env["TICKETING_FRONTDOOR_PROCESSES"]))]

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        token: str | None = None,
        data: bytes | None = None,
        base: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], object]:
        """One request, its reply held to the OpenAPI document (tests/contract); the
        status, headers and parsed body (JSON, else text, None when empty)."""
        status, hdrs, raw = self.exchange(method, path, body, token, data, base, headers)
        content_type = next((v for k, v in hdrs.items() if k.lower() == "content-type"), None)
        capture.observe(method, path, status, content_type, raw)
        text = raw.decode()
        try:
            parsed: object = json.loads(text) if text else None
        except json.JSONDecodeError:
            parsed = text
        return status, hdrs, parsed

    def exchange(
        self,
        method: str,
        path: str,
        body: object = None,
        token: str | None = None,
        data: bytes | None = None,
        base: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request as it went, unchecked: the status, headers and raw body."""
        headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload = (
            data if data is not None else (None if body is None else json.dumps(body).encode())
        )
        req = urllib.request.Request(
            (base or self.base) + path, data=payload, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw, status, hdrs = resp.read(), resp.status, dict(resp.headers)
        except urllib.error.HTTPError as err:
            raw, status, hdrs = err.read(), err.code, dict(err.headers)
        return status, hdrs, raw

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""

    def answers(self, path: str, base: str | None = None) -> bool:
        assert self.process is not None and self.process.poll() is None, (
            "the stack exited:\n" + self.logs()
        )
        # A readiness probe, not a test's request: a gateway's 502 while its upstreams
        # start is expected here.
        try:
            return self.exchange("GET", path, base=base)[0] == 200
        except OSError:
            return False


@contextmanager
def running_stack(amqp_url: str, workdir: Path) -> Iterator[Stack]:
    database_url = f"{PG_BASE}/tk_test_{RUN_ID}_stack"
    migrate.create_database(database_url)
    migrate.upgrade(database_url)
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}:/usr/sbin:/sbin",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "TICKETING_ENV": "dev",
        "TICKETING_DATABASE_URL": database_url,
        "TICKETING_REDIS_URL": REDIS_BASE,
        "TICKETING_REDIS_PREFIX": f"tkt{RUN_ID}stack:",
        "TICKETING_AMQP_URL": amqp_url,
        "TICKETING_TYPESENSE_API_KEY": f"stack-{RUN_ID}",
        "TICKETING_TYPESENSE_COLLECTION": f"events_{RUN_ID}_stack",
        "TICKETING_TYPESENSE_DATA_DIR": str(workdir / "typesense"),
        "TICKETING_JWT_SECRET": f"stack-secret-{RUN_ID}-0123456789abcdef",
    }
    for name in (
        "GATEWAY",
        "GATEWAY_METRICS",
        "CATALOG",
        "SEARCH_SYNC_METRICS",
        "LOCALSTRIPE",
    ):
        env[f"TICKETING_{name}_PORT"] = str(free_port())
    # Typesense also takes the port below its API port for Raft peering
    # (ticketing/typesense_server.py): both are reserved, or another process of the stack
    # may be handed the peering port and fail to bind (seen in CI: the waitingroom).
    env["TICKETING_TYPESENSE_PORT"] = str(consecutive_free_ports(2) + 1)
    # Several waitingroom processes and a booking front door, as make run starts them, on
    # consecutive ports.
    env["TICKETING_WAITINGROOM_PROCESSES"] = str(WAITINGROOM_PROCESSES)
    env["TICKETING_FRONTDOOR_PROCESSES"] = str(FRONTDOOR_PROCESSES)
    env["TICKETING_WAITINGROOM_PORT"] = str(
        consecutive_free_ports(WAITINGROOM_PROCESSES + FRONTDOOR_PROCESSES)
    )
    env["TICKETING_TYPESENSE_URL"] = f"http://127.0.0.1:{env['TICKETING_TYPESENSE_PORT']}"
    env["TICKETING_STRIPE_API_BASE"] = f"http://127.0.0.1:{env['TICKETING_LOCALSTRIPE_PORT']}"
    # booking_worker_2 (deploy/Procfile) serves its metrics on the port after the first's,
    # booking_payments three ports up (the gateway's metrics have the default of the third).
    env["TICKETING_BOOKING_WORKER_METRICS_PORT"] = str(consecutive_free_ports(4))

    subprocess.run(
        [VENV_BIN / "python", "-m", "ticketing.demo", "--events", str(DEMO_EVENTS)],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [VENV_BIN / "python", "-m", "deploy.render_nginx"],
        env=env,
        cwd=workdir,
        check=True,
        capture_output=True,
        timeout=30,
    )
    stack = Stack(env, workdir)
    with stack.log.open("wb") as log:
        stack.process = subprocess.Popen(
            [
                VENV_BIN / "honcho",
                "-f",
                str(ROOT / "deploy" / "Procfile"),
                "-d",
                str(workdir),
                "start",
            ],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: stack.answers("/healthz"), 120, "the stack's /healthz through the gateway"
        )
        # The gateway's /healthz is catalog_api's: wait for every waitingroom process too.
        for port in stack.waitingroom_ports + stack.frontdoor_ports:
            wait_until(
                lambda p=port: stack.answers("/healthz", f"http://127.0.0.1:{p}"),
                60,
                f"the waitingroom process on {port}",
            )
        # The index is bootstrapped from Postgres by search_sync once Typesense is up.
        wait_until(
            lambda: indexed(stack) == DEMO_EVENTS, 60, "search_sync to index the demo catalog"
        )
        yield stack
    finally:
        stack.process.send_signal(signal.SIGINT)
        try:
            stack.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(stack.process.pid, signal.SIGKILL)
            stack.process.wait()
        migrate.drop_database(database_url)


def indexed(stack: Stack) -> int | None:
    """Events in the search index itself (not the degraded Postgres answer)."""
    status, headers, body = stack.request("GET", "/search?per_page=1")
    if status != 200 or "X-Search-Degraded" in headers:
        return None
    return body["found"]


def dev_token(stack: Stack, user: str, roles: list[str]) -> str:
    status, _, body = stack.request("POST", "/auth/dev-token", {"user_id": user, "roles": roles})
    assert status == 200, body
    return body["access_token"]


def queue_event(stack: Stack, admin: str, on_sale_in: timedelta = timedelta(minutes=-1)) -> dict:
    """A small event of the caller's own with a waiting room, on sale ``on_sale_in`` from
    now (a minute ago by default)."""
    venue = {
        "name": "Glasshouse",
        "city": "Porto",
        "location": {"lat": 41.15, "lon": -8.61},
        "seat_map": {
            "sections": [
                {"name": "Floor", "rows": 2, "seats_per_row": 6, "price_cents": 5500},
                {"name": "Balcony", "rows": 1, "seats_per_row": 6, "price_cents": 3000},
            ]
        },
    }
    status, _, venue_body = stack.request("POST", "/admin/venues", venue, token=admin)
    assert status == 201, venue_body
    status, _, performer = stack.request(
        "POST", "/admin/performers", {"name": f"Patient Crowd {RUN_ID}"}, token=admin
    )
    assert status == 201, performer
    now = datetime.now(UTC)
    status, _, event = stack.request(
        "POST",
        "/admin/events",
        {
            "name": "Queue Night",
            "description": "Everyone waits their turn.",
            "date": (now + timedelta(days=30)).isoformat().replace("+00:00", "Z"),
            "on_sale_at": (now + on_sale_in).isoformat().replace("+00:00", "Z"),
            "venue_id": venue_body["id"],
            "performer_id": performer["id"],
            "queue_enabled": True,
            "currency": "EUR",
        },
        token=admin,
    )
    assert status == 201, event
    return event


def hold_every_seat(stack: Stack, event_id: int, who: str) -> list[tuple[str, str]]:
    """Three fans of ``who`` join the (unpaused) queue of a queue_event (18 seats, which
    serve nine fans of two), are admitted and hold 8, 8 and 2 seats: every seat is in a
    hold. Their (token, hold id)s."""
    buyers = {f"{who}-{n}-{RUN_ID}": seats for n, seats in enumerate((8, 8, 2))}
    tokens = {user: dev_token(stack, user, []) for user in buyers}
    for token in tokens.values():
        status, _, body = stack.request("POST", f"/queue/{event_id}/join", token=token)
        assert status == 200, body

    def admission(token: str) -> str | None:
        _, _, body = stack.request("GET", f"/queue/{event_id}/status", token=token)
        return body.get("admission_token") if isinstance(body, dict) else None

    # Each fan's token as their status first shows it: asked again, a status may meet the
    # fan's rate limit (429) instead.
    admitted: dict[str, str] = {}

    def let_in(user: str) -> bool:
        token = admission(tokens[user])
        if token:
            admitted[user] = token
        return token is not None

    for user in tokens:
        wait_until(lambda u=user: let_in(u), 10, f"{user} admitted")
    holds = []
    for user, seats in buyers.items():
        status, _, hold = stack.request(
            "POST",
            "/booking/reserve",
            {"event_id": event_id, "quantity": seats},
            token=tokens[user],
            headers={"X-Admission-Token": admitted[user]},
        )
        assert status == 201, hold
        holds.append((tokens[user], hold["hold_id"]))
    return holds
