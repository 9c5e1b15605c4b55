"""What the surge benchmark sets up and watches: its database with one queue-enabled event,
the gateway config with a hello-world upstream next to the waitingroom's, the admissions
as the admitters announce them, and the memory and sockets of the waitingroom processes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.reserve_setup import create_bench_database, sync_redis, with_vhost
from bench.search import free_port
from bench.surge_hello import HELLO_PATH
from deploy.rabbitmq_cluster import free_ports
from deploy.render_nginx import render, variables
from ticketing.config import Settings


async def create_surge_database(database_url: str, seats: int) -> int:
    """bench/reserve.py's fresh database (dropped first, migrated, every ticket COPYed), its
    hot event behind a waiting room and on sale since a minute ago; returns its id."""
    events = await create_bench_database(database_url, seats)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """UPDATE events SET queue_enabled = true, on_sale_at = now() - interval '1 minute'
               WHERE id = $1""",
            events.hot,
        )
    finally:
        await conn.close()
    return events.hot


def consecutive_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports, below the kernel's ephemeral range
    (32768+), from which the bench's tens of thousands of client sockets take theirs."""
    try:
        return free_ports(count, 20000, 32000)
    except RuntimeError as exc:
        raise SystemExit(f"bench: {exc}") from None


def queue_bench_settings(
    base: Settings,
    name: str,
    redis_prefix: str,
    waitingrooms: int,
    frontdoors: int = 1,
    **changes: Any,
) -> Settings:
    """A waiting-room bench's settings: its own database, vhost (both ``name``) and Redis
    prefix, free ports, ``waitingrooms`` processes and ``frontdoors`` booking front doors
    (as make run has them), dev tokens (the load generators mint
    them with the same secret), and no per-address limits (every fan comes from
    127.0.0.1: the limits would measure themselves, not the queue); then ``changes``."""
    return dataclasses.replace(
        base,
        env="dev",
        database_url=urlunsplit(urlsplit(base.database_url)._replace(path="/" + name)),
        amqp_url=with_vhost(base.amqp_url, name),
        redis_prefix=redis_prefix,
        host="127.0.0.1",
        gateway_port=free_port(),
        gateway_metrics_port=free_port(),
        catalog_port=free_port(),  # nobody listens: a queue bench never leaves the waitingroom
        waitingroom_port=consecutive_ports(waitingrooms + frontdoors),
        waitingroom_processes=waitingrooms,
        frontdoor_processes=frontdoors,
        rate_limit_per_minute=100_000_000,
        rate_limit_burst=1_000_000,
        queue_ip_rate_per_minute=100_000_000,
        **changes,
    )


def gateway_config(settings: Settings, hello_ports: list[int]) -> str:
    """deploy/nginx.conf.template as make run renders it, plus a hello-world upstream and
    route, so both sides of the comparison cross the same gateway."""
    config = render(variables(settings))
    servers = " ".join(f"server 127.0.0.1:{p};" for p in hello_ports)
    upstream = f"    upstream bench_hello {{\n        {servers}\n        keepalive 128;\n    }}\n\n"
    route = f"        location = {HELLO_PATH} {{ proxy_pass http://bench_hello; }}\n"
    for anchor in ("    server {\n", "        location = /metrics"):
        if anchor not in config:
            raise SystemExit(f"bench: deploy/nginx.conf.template has no {anchor.strip()!r}")
    config = config.replace("    server {\n", upstream + "    server {\n", 1)
    return config.replace("        location = /metrics", route + "        location = /metrics", 1)


@dataclass
class Admissions:
    """Every admission of the event as the admitters announce it on the queue's pub/sub
    channel ({"type": "admitted", "at": ms, "users": [[user, expiry], ...]}): when each fan
    was admitted, by the server's clock, to set against when the fan heard of it."""

    redis_url: str
    channel: str
    event_id: int
    at: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.redis = sync_redis(self.redis_url)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(self.channel)  # before any fan joins: no admission is missed
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        while not self.stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            body = json.loads(message["data"])
            if body.get("type") == "admitted" and body.get("event_id") == self.event_id:
                for user, _expiry in body["users"]:
                    self.at.setdefault(user, body["at"] / 1000)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.pubsub.close()
        self.redis.close()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def rss_bytes(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)[1]) * 1024


def open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def gateway_joins(settings: Settings) -> dict[str, float]:
    """The joins the gateway answered itself ("answered") and those it passed to the
    waitingroom ("passed:<reason>"), from its own /metrics, summed over events."""
    url = f"http://127.0.0.1:{settings.gateway_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    counts = {"answered": metric(text, "ticketing_gateway_queue_joins_total")}
    for name in ("place_calls", "place_joins"):
        counts[name] = metric(text, f"ticketing_gateway_queue_{name}_total")
    for reason in re.findall(r'_join_fallbacks_total\{reason="(\w+)"\}', text):
        counts["passed:" + reason] = metric(
            text, f'ticketing_gateway_queue_join_fallbacks_total{{reason="{reason}"}}'
        )
    return counts


def metric(text: str, name: str) -> float:
    """Sum of a Prometheus metric's samples in one /metrics text (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def histogram_quantile(texts: list[str], name: str, kind: str, q: float) -> float | None:
    """An upper bound of the ``q`` quantile of a histogram summed over processes (the
    first bucket that holds it), as Prometheus's histogram_quantile would bracket it."""
    buckets: dict[float, float] = {}
    pattern = re.compile(rf'^{name}_bucket\{{kind="{kind}",le="([^"]+)"\}} (\S+)$', re.M)
    for text in texts:
        for le, value in pattern.findall(text):
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(value)
    if not buckets or buckets[max(buckets)] == 0:
        return None
    total = buckets[max(buckets)]
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return bound
    return None


class Sampler:
    """Polls a probe every second in a thread: (monotonic time, value) pairs."""

    def __init__(self, probe: Callable[[], object], interval: float = 1.0) -> None:
        self.probe, self.interval = probe, interval
        self.samples: list[tuple[float, object]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            with contextlib.suppress(Exception):  # a missed sample is a gap, not a failed run
                self.samples.append((started, self.probe()))
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def close(self) -> list[tuple[float, object]]:
        self.stop.set()
        self.thread.join(timeout=10)
        return self.samples


def wait_for_time_wait(limit: int = 5_000, seconds: float = 75.0) -> None:
    """Wait (at most ``seconds``) until fewer than ``limit`` TCP sockets sit in TIME_WAIT.

    A surge leaves some 40,000 of them for a minute, most on ephemeral ports: meanwhile
    bind(0) can find no free port, and whatever runs next (rabbitmqctl, which listens on one
    to talk to the broker; a test suite; another benchmark) fails in odd ways."""
    deadline = time.monotonic() + seconds
    while True:
        waiting = _time_wait_sockets()
        if waiting < limit or time.monotonic() > deadline:
            return
        print(f"bench: {waiting:,} sockets in TIME_WAIT; waiting for them to clear", flush=True)
        time.sleep(5)


def _time_wait_sockets() -> int:
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                next(rows, None)
                count += sum(1 for row in rows if row.split()[3] == "06")
        except OSError:
            continue
    return count
