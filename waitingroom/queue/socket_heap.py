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

Not while they are still closing, though. A sell-out tells every fan at once and most of
them close their sockets at once: collecting at each quarter of that wave (0.6-1.3 s
each, six of them in one process of a 20,000-fan on-sale) held the sold-out notices of
the fans not told yet back for seconds. So a collection due waits until no socket has
closed for QUIET_SECONDS: one collection after the wave, none in it. Frozen garbage is
only memory for that long (a minute at most, for fans who never stop trickling out).
"""

from __future__ import annotations

import gc
import logging
import math
import time
from typing import Any

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.socket_heap")

FREEZE_FROM = 1000  # fewer sockets: a full collection is quick, nothing to do
GROWTH = 1.25
SHRINK = 0.75
QUIET_SECONDS = 3.0  # no socket closed for this long: the wave is over
# A queue whose fans never stop trickling out is collected all the same after this long.
MOST_DEFERRED_SECONDS = 60.0


class SocketHeap:
    def __init__(self, collector: Any = gc, clock: Any = time.monotonic) -> None:
        self.gc = collector
        self.clock = clock
        self.frozen_at = 0  # open sockets at the last freeze (0: nothing frozen)
        self.last_count = 0
        self.last_drop = -math.inf  # when the count was last seen falling
        self.due_since: float | None = None  # when a collection became due

    def sockets_open(self, count: int) -> None:
        """Called now and then (each push round) with the sockets open in this process."""
        now = self.clock()
        if count < self.last_count:
            self.last_drop = now
        self.last_count = count
        due = bool(self.frozen_at) and count < self.frozen_at * SHRINK
        if not due:
            self.due_since = None
        if count >= max(FREEZE_FROM, self.frozen_at * GROWTH):
            self.gc.collect(1)  # the young garbage, not to be frozen with the rest
            self.gc.freeze()
            self.frozen_at = count
        elif due:
            self.due_since = now if self.due_since is None else self.due_since
            quiet = now - self.last_drop >= QUIET_SECONDS
            if not quiet and now - self.due_since < MOST_DEFERRED_SECONDS:
                return
            self.due_since = None
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
