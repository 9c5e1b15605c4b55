"""Keeps the objects of thousands of held websockets out of Python's full garbage
collections.

With 10,000 sockets open a process holds millions of objects, and a full collection walks
all of them: 0.6-0.8 s (measured in bench/surge.py, about once a process every half minute
while holding), during which no push goes out and no admission is told. That was the whole
p99 of the push lag. So once the sockets have grown by a quarter, everything alive is
frozen (``gc.freeze``: out of the collector's sight, in constant time; objects still go when
their last reference does). Cycles among frozen objects (closed sockets' own) wait until
the sockets have shrunk by a quarter: then one full collection runs, on purpose, and what
is left is frozen again.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

FREEZE_FROM = 1000  # fewer sockets: a full collection is quick, nothing to do
GROWTH = 1.25
SHRINK = 0.75


class SocketHeap:
    def __init__(self, collector: Any = gc) -> None:
        self.gc = collector
        self.frozen_at = 0  # open sockets at the last freeze (0: nothing frozen)

    def sockets_open(self, count: int) -> None:
        """Called now and then (each push round) with the sockets open in this process."""
        if count >= max(FREEZE_FROM, self.frozen_at * GROWTH):
            self.gc.collect(1)  # the young garbage, not to be frozen with the rest
            self.gc.freeze()
            self.frozen_at = count
        elif self.frozen_at and count < self.frozen_at * SHRINK:
            started = time.monotonic()
            self.gc.unfreeze()
            self.gc.collect()
            if count >= FREEZE_FROM:
                self.gc.freeze()
            self.frozen_at = count if count >= FREEZE_FROM else 0
            log.info(
                "sockets shrank to %d: collected in %.0f ms",
                count,
                (time.monotonic() - started) * 1000,
            )
