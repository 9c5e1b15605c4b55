"""The queue in Redis: one object per process wrapping the Lua scripts of
:mod:`waitingroom.queue.scripts` and the reads the routes and loops need."""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from ticketing.coalesce import Coalescer
from ticketing.config import Settings
from ticketing.domain.queue import (
    QueueConfig,
    admission_pace,
    commitment,
    draw_users,
    measured_rate_per_minute,
)
from waitingroom.queue import scripts
from waitingroom.queue.metrics import PLACE_BATCH

# Most sessions expired or fans abandoned per tick and event: keeps a tick's script short
# (Redis runs nothing else meanwhile); the next tick, a fraction of a second later, goes on.
SWEEP_MAX = 1000
# Most fans admitted per tick and event, for the same reason.
ADMIT_BATCH_MAX = 500
# Seats a fan takes until measured (TICK's prior), and how many fans' worth it weighs
# against the holds measured in the event.
PRIOR_SEATS_PER_FAN = 2
PRIOR_WEIGHT_FANS = 5


_POSITION_KINDS = ("waiting", "pre", "admitted", "none")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _set_rate(config: QueueConfig, auto_rate: float | None) -> float:
    """The rate the admitters work to (auto mode's, capped by the operator's)."""
    ceiling = float(config.admit_per_minute)
    if config.mode != "auto":
        return ceiling
    return min(ceiling, auto_rate or 0.0)


def _seats_per_fan(state: dict[str, str]) -> float | None:
    fans = int(state.get("hold_fans", 0))
    return None if fans == 0 else round(int(state.get("hold_seats", 0)) / fans, 2)


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
    """Where a fan stands. kind: waiting | pre | admitted | sold_out | none."""

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


@dataclass(frozen=True, slots=True)
class CountApplied:
    """What a count of an event's inventory changed: ``change`` '' (none), 'sold_out',
    'on_sale' or 'stale' (a later count was in already); ``requeued``: admitted fans whose
    sessions a sell-out ended, back at the front of the line."""

    change: str
    requeued: int


@dataclass(frozen=True, slots=True)
class Figures:
    """One event's queue as a whole, read in one round trip."""

    config: QueueConfig
    waiting: int
    pre_queue: int
    active: int
    admitted_total: int
    admitted_by_second: dict[int, int]
    drawn: bool
    sold_out: bool
    auto_rate: float | None
    measured_per_minute: float  # admissions actually made lately
    pace_per_minute: float = 0.0  # what waits are told by (ticketing.domain.queue.admission_pace)
    all_held: bool = False  # every seat left is in someone's hold (some may come back)
    unclaimed: int = 0  # admitted fans holding no seats yet
    seats_per_fan: float | None = None  # measured from the holds made (None: not yet)

    @property
    def effective_per_minute(self) -> float:
        return _set_rate(self.config, self.auto_rate)


class QueueStore:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.prefix = settings.redis_prefix
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
        self._claim = redis.register_script(scripts.CLAIM)
        self._hurry_claim = redis.register_script(scripts.HURRY_CLAIM)
        self._keep_claim = redis.register_script(scripts.KEEP_CLAIM)
        self._count_begin = redis.register_script(scripts.COUNT_BEGIN)
        self._count_apply = redis.register_script(scripts.COUNT_APPLY)
        self._commit = redis.register_script(scripts.COMMIT)
        self._draw = redis.register_script(scripts.DRAW)
        self._positions = redis.register_script(scripts.POSITIONS)

    async def load_place(self) -> None:
        """Load the PLACE script into Redis (for anyone running it by its SHA)."""
        await self.redis.script_load(scripts.PLACE)

    def key(self, event_id: int, name: str) -> str:
        # The hash tag {<event_id>} puts all of an event's keys in one cluster slot.
        return f"{self.prefix}q:{{{event_id}}}:{name}"

    def keys(self, event_id: int, *names: str) -> list[str]:
        return [self.key(event_id, name) for name in names]

    def default_config(self) -> QueueConfig:
        s = self.settings
        return QueueConfig(
            s.queue_admit_per_minute,
            s.queue_max_active,
            False,
            s.queue_session_seconds,
            s.queue_mode,
            s.admission_claim_seconds,
            s.queue_admission_margin_percent,
        )

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
        keys = self.keys(event_id, "waiting", "pre", "active", "seen", "state")
        args: list[Any] = [*self._user_limit, *self._ip_limit]
        for (user_id, *rest), address in requests:
            keys.append(self.key(event_id, "rl:user:" + user_id))
            keys.append(self.key(event_id, "rl:ip:" + (address or "")))
            args += [user_id, *rest, "0" if address is None else "1"]
        reply = await self._place(keys=keys, args=args)
        PLACE_BATCH.observe(len(requests))
        out: list[Placement | RateLimited] = []
        width = scripts.PLACE_FIELDS
        for i in range(0, len(reply), width):
            kind, value, rank, pre_ahead, epoch_now, new, drawn = reply[i : i + width]
            kind = _text(kind)
            if kind == "limited":
                out.append(RateLimited(max(1, math.ceil(int(value) / 1000))))
                continue
            out.append(
                Placement(
                    kind,
                    int(_text(value)),
                    int(rank),
                    int(pre_ahead),
                    _text(epoch_now),
                    int(new),
                    bool(int(drawn)),
                )
            )
        return out

    async def epoch(self, event_id: int) -> str:
        """When this queue's state was created in Redis ("" before anyone joined it)."""
        return _text(await self.redis.hget(self.key(event_id, "state"), "epoch") or "")

    async def session_ends_ms(self, event_id: int, user_id: str) -> int | None:
        """When this fan's admitted session ends (epoch ms), or None when they have none
        (never admitted, or it ended by booking, leaving, expiry or sell-out)."""
        score = await self.redis.zscore(self.key(event_id, "active"), user_id)
        return None if score is None else int(score)

    async def session_for_reserve(
        self, event_id: int, user_id: str, keep_ms: int
    ) -> tuple[int | None, int | None]:
        """(when the fan's session ends, when its claim window closes unless they hold
        seats by then: None once they do), epoch ms; (None, None) without a session. For a
        reserve about to be sent: a claim window still open stays open at least
        ``keep_ms`` more (scripts KEEP_CLAIM), so the answer, or a retry's, is not
        refused for a window that closed while the reserve was under way."""
        ends, claim_by = await self._keep_claim(
            keys=self.keys(event_id, "active", "unclaimed"), args=[user_id, keep_ms]
        )
        if int(ends) < 0:
            return None, None
        return int(ends), None if int(claim_by) < 0 else int(claim_by)

    async def claim(self, event_id: int, user_id: str, seats: int) -> bool:
        """Record a 201 reserve: the fan holds ``seats`` more (their first hold of the
        session: True). Admission counts those seats as taken from now on."""
        first = await self._claim(
            keys=self.keys(event_id, "unclaimed", "state"), args=[user_id, seats]
        )
        return bool(int(first))

    async def hurry_claim(self, event_id: int, user_id: str, grace_ms: int) -> bool:
        """The fan's reserve found too few seats: their claim window closes within
        ``grace_ms`` (sooner if it already does). True when it moved."""
        moved = await self._hurry_claim(
            keys=self.keys(event_id, "unclaimed"), args=[user_id, grace_ms]
        )
        return bool(int(moved))

    async def leave(self, event_id: int, user_id: str) -> str:
        """Take the fan out of the queue or end their session; what they were, or ''."""
        left = await self._leave(
            keys=self.keys(event_id, "waiting", "pre", "active", "seen", "unclaimed"),
            args=[user_id],
        )
        return _text(left)

    async def positions(
        self, event_id: int, users: Sequence[str], touch: bool
    ) -> tuple[int, int, list[Placement]]:
        """(now_ms, waiting, a placement per user) in one round trip for all of them; with
        ``touch`` the waiting ones count as seen now."""
        reply = await self._positions(
            keys=self.keys(event_id, "waiting", "pre", "active", "seen", "state"),
            args=["1" if touch else "0", *users],
        )
        now_ms, waiting, pre_ahead = int(reply[0]), int(reply[1]), int(reply[2])
        epoch, drawn = _text(reply[3]), bool(int(reply[4]))
        placements = [
            Placement(
                _POSITION_KINDS[int(reply[i])],
                int(_text(reply[i + 2])),
                int(reply[i + 1]),
                pre_ahead,
                epoch,
                0,
                drawn,
            )
            for i in range(5, len(reply), 3)
        ]
        return now_ms, waiting, placements

    # --- admission ------------------------------------------------------------------------

    async def tick(self, event_id: int) -> TickResult:
        s = self.settings
        now_ms, expired, abandoned, admitted, lapsed, held = await self._tick(
            keys=self.keys(
                event_id,
                "waiting",
                "pre",
                "active",
                "seen",
                "state",
                "config",
                "rate",
                "unclaimed",
            ),
            args=[
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
            ],
        )
        held = _text(held)
        return TickResult(
            int(now_ms),
            [_text(u) for u in expired],
            int(abandoned),
            [
                (_text(admitted[i]), int(_text(admitted[i + 1])), int(_text(admitted[i + 2])))
                for i in range(0, len(admitted), 3)
            ],
            [_text(u) for u in lapsed],
            None if held == "" else held == "1",
        )

    # --- inventory ------------------------------------------------------------------------

    async def count_begin(self, event_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Before counting in PostgreSQL: per event (Redis time in us, seats held through
        the front door so far), for :meth:`count_apply`."""
        pipe = self.redis.pipeline(transaction=False)
        for event_id in event_ids:
            # Run in a pipeline, the script is loaded first should Redis not have it.
            await self._count_begin(keys=[self.key(event_id, "state")], client=pipe)
        replies = await pipe.execute()
        return {
            event_id: (int(_text(began)), int(_text(base)))
            for event_id, (began, base) in zip(event_ids, replies, strict=True)
        }

    async def count_apply(
        self, event_id: int, began: tuple[int, int] | None, available: int, held: int
    ) -> CountApplied:
        """Store a count made after :meth:`count_begin` (``began``; None for an event that
        had no begin: its seats held so far all count as not yet in the count)."""
        began_us, base = began if began is not None else (0, 0)
        change, moved = await self._count_apply(
            keys=self.keys(event_id, "state", "waiting", "active", "unclaimed", "seen"),
            args=[began_us, base, available, held],
        )
        return CountApplied(_text(change), int(moved))

    async def nothing_free(self, event_id: int) -> bool:
        """Whether, as far as the last count and the holds since tell, no seat of the event
        is free (every one left is held, or it is sold out)."""
        available, base, held_seats, sold_out = await self.redis.hmget(
            self.key(event_id, "state"), "available", "seat_base", "hold_seats", "sold_out"
        )
        if sold_out == b"1":
            return True
        if available is None:
            return False
        return int(available) - max(0, int(held_seats or 0) - int(base or 0)) <= 0

    async def figures(self, event_id: int) -> Figures:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.key(event_id, "config"))
        pipe.zcard(self.key(event_id, "waiting"))
        pipe.zcard(self.key(event_id, "pre"))
        pipe.zcard(self.key(event_id, "active"))
        pipe.hgetall(self.key(event_id, "state"))
        pipe.hgetall(self.key(event_id, "rate"))
        pipe.zcard(self.key(event_id, "unclaimed"))
        config, waiting, pre, active, state, rate, unclaimed = await pipe.execute()
        state = {_text(k): _text(v) for k, v in state.items()}
        raw_auto_rate = state.get("auto_rate")
        auto_rate = None if raw_auto_rate is None else float(raw_auto_rate)
        by_second = {int(k): int(v) for k, v in rate.items()}
        queue_config = self.config_from(config)
        now_second = int(time.time())
        return Figures(
            config=queue_config,
            waiting=int(waiting),
            pre_queue=int(pre),
            active=int(active),
            admitted_total=int(state.get("admitted_total", 0)),
            admitted_by_second=by_second,
            drawn=state.get("drawn") == "1",
            sold_out=state.get("sold_out") == "1",
            auto_rate=auto_rate,
            measured_per_minute=measured_rate_per_minute(by_second, now_second),
            pace_per_minute=admission_pace(
                _set_rate(queue_config, auto_rate),
                by_second,
                now_second,
                slots_free=int(active) < queue_config.max_active,
            ),
            all_held=state.get("all_held") == "1" and state.get("sold_out") != "1",
            unclaimed=int(unclaimed),
            seats_per_fan=_seats_per_fan(state),
        )

    def config_from(self, raw: dict[Any, Any]) -> QueueConfig:
        values = {_text(k): _text(v) for k, v in raw.items()}
        base = self.default_config()
        return QueueConfig(
            admit_per_minute=int(values.get("admit_per_minute", base.admit_per_minute)),
            max_active=int(values.get("max_active", base.max_active)),
            paused=values.get("paused", "0") == "1",
            session_seconds=int(values.get("session_seconds", base.session_seconds)),
            mode=values.get("mode", base.mode),
            claim_seconds=int(values.get("claim_seconds", base.claim_seconds)),
            admission_margin_percent=int(
                values.get("admission_margin_percent", base.admission_margin_percent)
            ),
        )

    async def save_config(
        self, event_id: int, config: QueueConfig, fields: Iterable[str] | None = None
    ) -> None:
        values = {**config.to_json(), "paused": "1" if config.paused else "0"}
        chosen = set(values) if fields is None else set(fields)
        mapping: dict[FieldT, EncodableT] = {
            name: value for name, value in values.items() if name in chosen
        }
        if mapping:
            await self.redis.hset(self.key(event_id, "config"), mapping=mapping)

    async def set_state(self, event_id: int, **fields: str | int | float) -> None:
        # Spelled out for the type checker: redis wants its own key type (Mapping keys are
        # invariant).
        mapping: dict[FieldT, EncodableT] = {name: value for name, value in fields.items()}
        await self.redis.hset(self.key(event_id, "state"), mapping=mapping)

    # --- the fair start -------------------------------------------------------------------

    async def ensure_commitment(self, event_id: int) -> str:
        """Commit to a seed for the pre-queue draw (the first call wins; later calls return
        the commitment in force)."""
        seed = secrets.token_hex(32)
        got = await self._commit(
            keys=self.keys(event_id, "seed", "fair"), args=[seed, commitment(seed)]
        )
        return _text(got)

    async def mark_recorded(self, event_id: int, commitment: str) -> None:
        """Note beside the commitment that it is on record in PostgreSQL."""
        await self.redis.hset(self.key(event_id, "fair"), "recorded", commitment)

    async def draw(self, event_id: int, on_sale_ms: int) -> str:
        """Shuffle the pre-queue ahead of everyone else, once; 'ok', 'done' or 'early'."""
        for _ in range(5):
            await self.ensure_commitment(event_id)
            seed_raw = await self.redis.get(self.key(event_id, "seed"))
            members = await self.redis.zrange(self.key(event_id, "pre"), 0, -1)
            seed = _text(seed_raw)
            order = draw_users(seed, event_id, [_text(m) for m in members])
            args: list[Any] = [on_sale_ms, seed]
            for user, ref in order:
                args += [user, ref]
            outcome = _text(
                await self._draw(
                    keys=self.keys(
                        event_id, "waiting", "pre", "seen", "state", "fair", "drawn", "seed"
                    ),
                    args=args,
                )
            )
            if outcome != "changed":  # a fan left the pre-queue meanwhile: read it again
                return outcome
        return "changed"

    async def fairness(self, event_id: int) -> tuple[dict[str, str], list[str]]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.key(event_id, "fair"))
        pipe.lrange(self.key(event_id, "drawn"), 0, -1)
        fair, drawn = await pipe.execute()
        return {_text(k): _text(v) for k, v in fair.items()}, [_text(r) for r in drawn]

    # --- notifications --------------------------------------------------------------------

    @property
    def channel(self) -> str:
        return f"{self.prefix}queue:notify"

    async def publish(self, event_id: int, kind: str, **fields: Any) -> None:
        message = json.dumps({"event_id": event_id, "type": kind, **fields})
        await self.redis.publish(self.channel, message)
