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
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids
