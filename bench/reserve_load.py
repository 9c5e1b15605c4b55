"""The reserve benchmark's load generator: one process of fans posting ``/booking/reserve``.

    python bench/reserve_load.py SPEC.json RESULT.json

bench/reserve.py starts one or more of these (the fans split between them) so the client is
not the bottleneck. Each mints its fans' dev tokens locally (``ticketing.auth``, the JWT
secret from TICKETING_JWT_SECRET), builds every request body up front, warms its connections
and the services up on a separate event, prints ``ready`` and waits for a line on stdin
before it fires: every process starts at once. Latency is measured client side, from just
before the request is written to the last byte of the answer.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ticketing.auth import issue_dev_token  # noqa: E402
from ticketing.config import Settings  # noqa: E402
from ticketing.web import use_uvloop  # noqa: E402


@dataclass(frozen=True, slots=True)
class Summary:
    count: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(latencies_ms: list[float], count: int, seconds: float) -> Summary:
    ordered = sorted(latencies_ms)
    return Summary(count, seconds, percentile(ordered, 50), percentile(ordered, 99))


@dataclass(slots=True)
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    ok_ms: list[float] = field(default_factory=list)
    ok_done_at: list[float] = field(default_factory=list)  # time.monotonic(), shared by processes
    granted: dict[str, list[int]] = field(default_factory=dict)  # fan -> ticket ids of a 201
    unclear: list[str] = field(default_factory=list)  # fans answered neither 201 nor 409
    wrong_size: int = 0  # 201s with a different number of tickets than asked
    unsent: int = 0  # fans still waiting when the time was up
    samples: dict[int, str] = field(default_factory=dict)  # one body per unexpected status


async def fire(
    session: aiohttp.ClientSession,
    urls: list[str],
    requests: list[tuple[str, bytes, dict[str, str], int]],
    concurrency: int,
    seconds: float = float("inf"),
) -> Tally:
    """Send every request with ``concurrency`` in flight; closed loop, no think time. No new
    request starts after ``seconds`` (the ones in flight finish): the run stays bounded."""
    tally = Tally()
    pending = iter(enumerate(requests))
    deadline = time.monotonic() + seconds

    async def fan_loop() -> None:
        for index, (user_id, body, headers, quantity) in pending:
            if time.monotonic() > deadline:
                tally.unsent += 1
                continue
            url = urls[index % len(urls)]
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    payload = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                payload, status = repr(exc).encode(), 0
            elapsed_ms = (time.perf_counter() - started) * 1000
            tally.statuses[status] += 1
            tally.latencies_ms.append(elapsed_ms)
            if status == 201:
                tally.ok_ms.append(elapsed_ms)
                tally.ok_done_at.append(time.monotonic())
                ids = [t["id"] for t in json.loads(payload)["tickets"]]
                tally.granted[user_id] = ids
                tally.wrong_size += len(ids) != quantity
            elif status != 409:
                tally.unclear.append(user_id)
                tally.samples.setdefault(status, payload[:300].decode(errors="replace"))

    await asyncio.gather(*(fan_loop() for _ in range(concurrency)))
    return tally


def build_requests(
    settings: Settings, event_id: int, fans: list[tuple[str, int]]
) -> list[tuple[str, bytes, dict[str, str], int]]:
    requests = []
    for user_id, quantity in fans:
        token = issue_dev_token(settings, user_id, [])["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        body = json.dumps({"event_id": event_id, "quantity": quantity}).encode()
        requests.append((user_id, body, headers, quantity))
    return requests


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    settings = Settings.from_env()
    urls = [f"{base}/booking/reserve" for base in spec["bases"]]
    fans = [(user, quantity) for user, quantity in spec["fans"]]
    requests = build_requests(settings, spec["event_id"], fans)
    warmup = build_requests(settings, spec["warmup_event_id"], spec["warmup_fans"])
    # No connection limit: the fan coroutines are the limit, one keep-alive connection each.
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=spec["request_timeout"])
    # The client shares the two cores with what it measures: no cookie handling, no
    # decompression, no default headers to compute per request.
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
    ) as session:
        warm = await fire(session, urls, warmup, spec["concurrency"])
        print(f"ready {json.dumps(dict(warm.statuses))}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = time.monotonic()
        tally = await fire(session, urls, requests, spec["concurrency"], spec["seconds"])
        finished = time.monotonic()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "started_at": started,
        "finished_at": finished,
        "warmup_statuses": dict(warm.statuses),
        "statuses": dict(tally.statuses),
        "latencies_ms": tally.latencies_ms,
        "ok_ms": tally.ok_ms,
        "ok_done_at": tally.ok_done_at,
        "granted": tally.granted,
        "unclear": tally.unclear,
        "wrong_size": tally.wrong_size,
        "unsent": tally.unsent,
        "samples": tally.samples,
    }


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    use_uvloop()  # the load generator shares the two cores: spend as little as it can
    result = asyncio.run(run(spec))
    Path(sys.argv[2]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
