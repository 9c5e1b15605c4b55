"""The reserve benchmark's load: every fan posts ``/booking/reserve`` once, through wrk.

    python bench/reserve_load.py SPEC.json RESULT.json

bench/reserve.py starts it. It mints the fans' dev tokens locally (``ticketing.auth``, the
JWT secret from TICKETING_JWT_SECRET) into a file for bench/reserve_wrk.lua, warms the
gateway and the services up on a separate event (aiohttp), prints ``ready`` and waits for
a line on stdin, then runs wrk (closed loop, SPEC's connections, no think time). wrk, in C,
measures latency client side and costs the shared cores a fraction of what a Python client
did (about 0.6 ms of CPU per request, as much as the front door itself). The answers wrk
wrote (201 bodies, other statuses, 409 counts) go into RESULT for the oversell check.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
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


async def warm_up(spec: dict[str, Any], settings: Settings) -> Tally:
    urls = [f"{spec['base']}/booking/reserve"]
    warmup = build_requests(settings, spec["warmup_event_id"], spec["warmup_fans"])
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=spec["request_timeout"])
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return await fire(session, urls, warmup, spec["concurrency"])


def run(spec: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Warm up with aiohttp, then fire every fan with wrk (bench/reserve_wrk.lua): a C
    client, so the machine's two cores go to what is measured, not to the client."""
    settings = Settings.from_env()
    warm = asyncio.run(warm_up(spec, settings))
    fans_file = out_dir / "wrk_fans.tsv"
    with fans_file.open("w") as f:
        for user_id, quantity in spec["fans"]:
            token = issue_dev_token(settings, user_id, [])["access_token"]
            body = json.dumps({"event_id": spec["event_id"], "quantity": quantity})
            f.write(f"{token}\t{body}\n")
    threads = spec["threads"]
    prefix = out_dir / "wrk_out"
    summary_path = out_dir / "wrk_summary.json"
    for stale in out_dir.glob("wrk_out.*"):
        stale.unlink()
    summary_path.unlink(missing_ok=True)
    argv = ["wrk", "-t", str(threads), "-c", str(spec["concurrency"])]
    argv += ["-d", f"{int(spec['seconds']) + 60}s", "--timeout", f"{spec['request_timeout']}s"]
    argv += ["-s", str(ROOT / "bench" / "reserve_wrk.lua"), f"{spec['base']}/booking/reserve"]
    argv += ["--", str(fans_file), str(prefix), str(threads)]
    print(f"ready {json.dumps(dict(warm.statuses))}", flush=True)
    sys.stdin.readline()
    started = time.time()
    wrk = subprocess.Popen(
        argv,
        env={**os.environ, "RESERVE_WRK_SUMMARY": str(summary_path)},
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + spec["seconds"]
    outputs = [Path(f"{prefix}.{k}") for k in range(threads)]
    while time.monotonic() < deadline and wrk.poll() is None:
        if all(_finished(path) for path in outputs):
            break
        time.sleep(0.05)
    finished = time.time()
    # Every thread is done (or time is up): wrk would otherwise sleep out its -d.
    wrk.send_signal(signal.SIGINT)
    wrk.wait(60)
    return {
        "cpu_seconds": _cpu_seconds(),
        "started_at": started,
        "finished_at": finished,
        "warmup_statuses": dict(warm.statuses),
        "wrk": json.loads(summary_path.read_text()),
        **_answers(outputs, len(spec["fans"])),
    }


def _finished(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 200))
            return b"\ndone\t" in b"\n" + f.read()
    except FileNotFoundError:
        return False


def _answers(outputs: list[Path], fans: int) -> dict[str, Any]:
    statuses: Counter[int] = Counter()
    ok_bodies: list[dict[str, Any]] = []
    samples: dict[int, str] = {}
    for path in outputs:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            head, _, rest = line.partition("\t")
            if head == "done":
                continue
            status = int(head)
            statuses[status] += 1
            if status == 201:
                body = json.loads(rest)
                ok_bodies.append(
                    {"hold_id": body["hold_id"], "ticket_ids": [t["id"] for t in body["tickets"]]}
                )
            elif status != 409:
                samples.setdefault(status, rest[:300])
    return {
        "statuses": dict(statuses),
        "ok_bodies": ok_bodies,
        "unsent": fans - sum(statuses.values()),
        "samples": samples,
    }


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    spec_path, result_path = Path(sys.argv[1]), Path(sys.argv[2])
    spec = json.loads(spec_path.read_text())
    use_uvloop()
    result = run(spec, spec_path.parent)
    result_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
