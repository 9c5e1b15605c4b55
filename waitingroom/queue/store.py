"""The queue in Redis: one object per process wrapping the Lua scripts of
:mod:`waitingroom.queue.scripts` and the reads the routes and loops need.

:class:`QueueStore` is made of a part per concern (``store_config``, ``store_figures``,
``store_claims``, ``store_count``, ``store_draw``, ``store_notify``, ``store_challenge``).
Here: the line itself (where fans stand) and the admitters' tick, and the answers the rest
of the queue reads them as (:class:`Placement`, :class:`TickResult`; :class:`Figures` is
``store_figures``'s, named here too)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.typing import EncodableT

from ticketing.coalesce import Coalescer
from ticketing.config import Settings
from ticketing.redis_acked import run_acknowledged
from ticketing.redis_connect import RedisClient
from ticketing.redis_url import parse_redis_url
from waitingroom.queue import scripts
from waitingroom.queue.metrics import PLACE_BATCH, UNREPLICATED_TICKS
from waitingroom.queue.scripts_places import PLACE_FIELDS
from waitingroom.queue.store_challenge import ChallengeStore
from waitingroom.queue.store_claims import SessionStore
from waitingroom.queue.store_count import CountStore
from waitingroom.queue.store_draw import DrawStore
from waitingroom.queue.store_figures import Figures, FiguresStore
from waitingroom.queue.store_keys import text
from waitingroom.queue.store_notify import NotifyStore

__all__ = ["Figures", "Placement", "QueueStore", "RateLimited", "TickResult", "gcra_limit"]

# Most sessions expired or fans abandoned per tick and event: keeps a tick's script short
# (Redis runs nothing else meanwhile); the next tick, a fraction of a second later, goes on.
SWEEP_MAX = 1000
# Most fans admitted per tick and event, for the same reason.
ADMIT_BATCH_MAX = 500
# How long a tick waits for a replica to have its admissions, and how long an event's ticks
# stop waiting after one ran out (ticketing/redis_acked.py).
ACK_TIMEOUT_MS = 100
ACK_RETRY_SECONDS = 5.0
# Seats a fan takes until measured (TICK's prior), and how many fans' worth it weighs
# against the holds measured in the event.
PRIOR_SEATS_PER_FAN = 2
PRIOR_WEIGHT_FANS = 5


_POSITION_KINDS = ("waiting", "pre", "admitted", "none", "lost")
_TICK_KEYS = (
    "waiting",
    "pre",
    "active",
    "seen",
    "state",
    "config",
    "rate",
    "unclaimed",
    "sessions",
    "departed",
)


class RateLimited(Exception):
    """The fan's or the address's queue limit refused the call."""

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"rate limited; retry in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


def gcra_limit(per_minute: int) -> tuple[float, float]:
    interval = 60_000 / per_minute
    return interval, interval * max(5, per_minute // 6)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a fan stands. kind: waiting | pre | admitted | sold_out | none, or lost (from
    positions() only: not in the queue yet never departed, a place the queue lost)."""

    kind: str
    place: int  # FIFO place, drawn place (< 0), or the session's expiry (ms) when admitted
    rank: int  # among the waiting, 0 = next; -1 when not waiting
    pre_ahead: int  # pre-queue fans still to be drawn ahead of everyone waiting
    epoch: str
    new: int  # 0 already there, 1 joined now, 2 restored from a queue ticket
    drawn: bool

    @property
    def ahead(self) -> int:
        return self.rank + self.pre_ahead


@dataclass(frozen=True, slots=True)
class TickResult:
    now_ms: int
    expired: list[str]
    abandoned: int
    admitted: list[tuple[str, int, int]]  # user, place, session expiry (ms)
    unclaimed: list[str] = field(default_factory=list)  # lost the admission: held nothing
    all_held: bool | None = None  # whether every seat left is in a hold, when it changed


class QueueStore(FiguresStore, SessionStore, CountStore, DrawStore, NotifyStore, ChallengeStore):
    def __init__(self, redis: RedisClient, settings: Settings) -> None:
        super().__init__(redis, settings)
        self._place = redis.register_script(scripts.PLACE)
        self._placing: Coalescer[int, tuple[tuple[Any, ...], str | None], Placement] = Coalescer(
            self._place_many
        )
        # GCRA (ticketing/ratelimit.py's, in the PLACE script): interval and tolerance in
        # ms; a sixth of the minute's allowance may come at once (a reload, a reconnect).
        self._user_limit = gcra_limit(settings.queue_user_rate_per_minute)
        self._ip_limit = gcra_limit(settings.queue_ip_rate_per_minute)
        self._leave = redis.register_script(scripts.LEAVE)
        self._tick = redis.register_script(scripts.TICK)
        # With replicas (a cluster, Sentinel), a tick's admissions are on a replica before
        # any fan hears of them (ticketing/redis_acked.py). Where the wait ran out (no
        # replica now: one just promoted, or the replica down) an event's ticks stop
        # waiting for a while, so the admitter's loop over every event does not crawl.
        self._acked = parse_redis_url(settings.redis_url).mode != "single"
        self._unacked_until: dict[int, float] = {}
        self._positions = redis.register_script(scripts.POSITIONS)
        self._touch = redis.register_script(scripts.TOUCH)

    async def load_place(self) -> None:
        """Load the PLACE script into Redis (for anyone running it by its SHA)."""
        await self.redis.script_load(scripts.PLACE)

    # --- fans ---------------------------------------------------------------------------

    async def place(
        self,
        event_id: int,
        user_id: str,
        *,
        join: bool,
        on_sale_ms: int,
        restore: tuple[str, int, str] | None = None,
        address: str | None = None,
    ) -> Placement:
        """Where the fan stands; with ``join``, placing them first if they are not in line.
        With ``address`` the call counts against the fan's and the address's limits and
        raises :class:`RateLimited` when either refuses it (nothing else happens then).

        Calls for one event that arrive together go to Redis as one script call."""
        where, place, epoch = restore or ("", 0, "")
        request = (user_id, "join" if join else "status", on_sale_ms, where, place, epoch)
        return await self._placing.submit(event_id, (request, address))

    async def _place_many(
        self, event_id: int, requests: list[tuple[tuple[Any, ...], str | None]]
    ) -> list[Placement | RateLimited]:
        keys = self.keys(event_id, "waiting", "pre", "active", "seen", "state", "departed")
        args: list[Any] = [*self._user_limit, *self._ip_limit]
        # No challenge here: PLACE is given a key it reads anyway in its place (during a
        # cluster's slot migration a key missing on a node makes the call TRYAGAIN).
        unused = self.key(event_id, "state")
        for (user_id, *rest), address in requests:
            keys.append(self.key(event_id, "rl:user:" + user_id))
            keys.append(self.key(event_id, "rl:ip:" + (address or "")))
            keys.append(unused)
            args += [user_id, *rest, "0" if address is None else "1", 0]
        reply = await self._place(keys=keys, args=args)
        PLACE_BATCH.observe(len(requests))
        out: list[Placement | RateLimited] = []
        width = PLACE_FIELDS
        for i in range(0, len(reply), width):
            kind, value, rank, pre_ahead, epoch_now, new, drawn = reply[i : i + width]
            kind = text(kind)
            if kind == "limited":
                out.append(RateLimited(max(1, math.ceil(int(value) / 1000))))
                continue
            out.append(
                Placement(
                    kind,
                    int(text(value)),
                    int(rank),
                    int(pre_ahead),
                    text(epoch_now),
                    int(new),
                    bool(int(drawn)),
                )
            )
        return out

    async def epoch(self, event_id: int) -> str:
        """When this queue's state was created in Redis ("" before anyone joined it)."""
        return text(await self.redis.hget(self.key(event_id, "state"), "epoch") or "")

    async def leave(self, event_id: int, user_id: str) -> str:
        """Take the fan out of the queue or end their session; what they were, or ''."""
        left = await self._leave(
            keys=self.keys(event_id, "waiting", "pre", "active", "seen", "unclaimed", "departed"),
            args=[user_id],
        )
        return text(left)

    async def positions(
        self, event_id: int, users: Sequence[str]
    ) -> tuple[int, int, list[Placement]]:
        """(now_ms, waiting, a placement per user) in one round trip for all of them."""
        reply = await self._positions(
            keys=self.keys(event_id, "waiting", "pre", "active", "state", "departed"),
            args=users,
        )
        now_ms, waiting, pre_ahead = int(reply[0]), int(reply[1]), int(reply[2])
        epoch, drawn = text(reply[3]), bool(int(reply[4]))
        placements = [
            Placement(
                _POSITION_KINDS[int(reply[i])],
                int(text(reply[i + 2])),
                int(reply[i + 1]),
                pre_ahead,
                epoch,
                0,
                drawn,
            )
            for i in range(5, len(reply), 3)
        ]
        return now_ms, waiting, placements

    async def touch(self, event_id: int, users: Sequence[str]) -> int:
        """The waiting ones among ``users`` count as seen now; how many they were."""
        touched = await self._touch(keys=self.keys(event_id, "waiting", "seen"), args=users)
        return int(touched)

    # --- admission ------------------------------------------------------------------------

    async def tick(self, event_id: int) -> TickResult:
        s = self.settings
        keys = self.keys(event_id, *_TICK_KEYS)
        args: list[EncodableT] = [
            s.queue_admit_per_minute,
            s.queue_max_active,
            s.queue_session_seconds,
            s.queue_mode,
            s.queue_abandon_seconds * 1000,
            ADMIT_BATCH_MAX,
            SWEEP_MAX,
            s.admission_claim_seconds,
            s.queue_admission_margin_percent,
            PRIOR_SEATS_PER_FAN,
            PRIOR_WEIGHT_FANS,
        ]
        if self._acked and time.monotonic() >= self._unacked_until.get(event_id, 0.0):
            reply, acked = await run_acknowledged(
                self.redis, self._tick, keys, args, 1, ACK_TIMEOUT_MS
            )
            if acked < 1:
                self._unacked_until[event_id] = time.monotonic() + ACK_RETRY_SECONDS
        else:
            reply, acked = await self._tick(keys=keys, args=args), 0
        now_ms, expired, abandoned, admitted, lapsed, held = reply
        if admitted and self._acked and acked < 1:
            UNREPLICATED_TICKS.inc()
        held = text(held)
        return TickResult(
            int(now_ms),
            [text(u) for u in expired],
            int(abandoned),
            [
                (text(admitted[i]), int(text(admitted[i + 1])), int(text(admitted[i + 2])))
                for i in range(0, len(admitted), 3)
            ],
            [text(u) for u in lapsed],
            None if held == "" else held == "1",
        )
