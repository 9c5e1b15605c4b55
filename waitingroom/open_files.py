"""Every fan in line holds a websocket, and each is an open file: a waitingroom process with
the usual soft limit of 1,024 (containerd 2.0's default, many distributions' login default)
would refuse fans after about a thousand. The hard limit is what the machine's operator
allows; the soft one is only a default, so the process takes all it is allowed at start."""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; returns the soft limit in
    force afterwards (unchanged when the hard limit is unlimited or the raise is refused)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # a sandbox may forbid it: run on the soft one
            log.warning("open files limit stays at %d (hard %d): %s", soft, hard, exc)
            return soft
        soft = hard
    if soft < 20_000:
        log.warning("open files limit %d: each waiting fan's websocket takes one", soft)
    return soft
