"""The reserve benchmark's load: every fan posts ``/booking/reserve`` once, through wrk.

    python bench/reserve_load.py SPEC.json RESULT.json

bench/reserve.py starts it. It mints the fans' dev tokens locally (``ticketing.auth``, the
JWT secret from TICKETING_JWT_SECRET) into a file for bench/reserve_wrk.lua, warms the
gateway and the services up on a separate event (wrk too), prints ``ready`` and waits for
a line on stdin, then runs wrk (closed loop, SPEC's connections, no think time). wrk, in C,
measures latency client side and costs the shared cores a fraction of what a Python client
did (about 0.6 ms of CPU per request, as much as the front door itself). The answers wrk
wrote (201 bodies, other statuses, 409 counts) go into RESULT for the oversell check.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ticketing.auth import issue_dev_token  # noqa: E402
from ticketing.config import Settings  # noqa: E402


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


def write_fans(settings: Settings, event_id: int, fans: list[tuple[str, int]], path: Path) -> None:
    """One line per fan for bench/reserve_wrk.lua: a dev token and the reserve body."""
    with path.open("w") as f:
        for user_id, quantity in fans:
            token = issue_dev_token(settings, user_id, [])["access_token"]
            body = json.dumps({"event_id": event_id, "quantity": quantity})
            f.write(f"{token}\t{body}\n")


@dataclass(frozen=True, slots=True)
class WrkRun:
    started_at: float
    finished_at: float
    outputs: list[Path]
    summary: dict[str, Any]


def run_wrk(spec: dict[str, Any], fans_file: Path, name: str, seconds: float) -> WrkRun:
    """Every fan of ``fans_file`` posts once (closed loop, SPEC's connections); returns when
    each was answered or ``seconds`` are up."""
    out_dir, threads = fans_file.parent, spec["threads"]
    prefix, summary_path = out_dir / f"{name}_out", out_dir / f"{name}_summary.json"
    for stale in out_dir.glob(f"{name}_out.*"):
        stale.unlink()
    summary_path.unlink(missing_ok=True)
    argv = ["wrk", "-t", str(threads), "-c", str(spec["concurrency"])]
    argv += ["-d", f"{int(seconds) + 60}s", "--timeout", f"{spec['request_timeout']}s"]
    argv += ["-s", str(ROOT / "bench" / "reserve_wrk.lua"), f"{spec['base']}/booking/reserve"]
    argv += ["--", str(fans_file), str(prefix), str(threads)]
    started = time.time()
    wrk = subprocess.Popen(
        argv,
        env={**os.environ, "RESERVE_WRK_SUMMARY": str(summary_path)},
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + seconds
    outputs = [Path(f"{prefix}.{k}") for k in range(threads)]
    while time.monotonic() < deadline and wrk.poll() is None:
        if all(_finished(path) for path in outputs):
            break
        time.sleep(0.05)
    finished = time.time()
    # Every thread is done (or time is up): wrk would otherwise sleep out its -d.
    wrk.send_signal(signal.SIGINT)
    wrk.wait(60)
    return WrkRun(started, finished, outputs, json.loads(summary_path.read_text()))


def run(spec: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Warm up on the warm-up event, then fire every fan with wrk (bench/reserve_wrk.lua):
    a C client, so the machine's two cores go to what is measured, not to the client."""
    settings = Settings.from_env()
    warmup_file, fans_file = out_dir / "wrk_warmup.tsv", out_dir / "wrk_fans.tsv"
    write_fans(settings, spec["warmup_event_id"], spec["warmup_fans"], warmup_file)
    write_fans(settings, spec["event_id"], spec["fans"], fans_file)
    warm = run_wrk(spec, warmup_file, "warmup", 60)
    warm_statuses = _answers(warm.outputs, len(spec["warmup_fans"]))["statuses"]
    print(f"ready {json.dumps(warm_statuses)}", flush=True)
    sys.stdin.readline()
    fired = run_wrk(spec, fans_file, "wrk", spec["seconds"])
    return {
        "cpu_seconds": _cpu_seconds(),
        "started_at": fired.started_at,
        "finished_at": fired.finished_at,
        "warmup_statuses": warm_statuses,
        "wrk": fired.summary,
        **_answers(fired.outputs, len(spec["fans"])),
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
    result = run(spec, spec_path.parent)
    result_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
