"""CPU seconds of groups of processes, read from /proc: what the benches charge each
component of the stack for the work they measure."""

from __future__ import annotations

import os
from pathlib import Path


def clock_ticks(pids: list[int]) -> float:
    """CPU seconds (user + system) the live processes among ``pids`` have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def pids_named(name: str) -> list[int]:
    """The processes called ``name``; only those descended from the process
    ``$BENCH_SERVERS_ANCESTOR`` names, when it names one (bench/scale.py: the servers it
    started, not the machine's shared ones that other work may be using meanwhile)."""
    ancestor = int(os.environ.get("BENCH_SERVERS_ANCESTOR") or 0)
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return [pid for pid in pids if not ancestor or descends(pid, ancestor)]


def descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False
