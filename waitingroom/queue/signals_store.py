"""What one person, one place keeps in Redis, under the event's hash tag like every queue
key (one slot of a cluster; :mod:`waitingroom.queue.signals_rules` has the rules):

- ``sig:block:<block>`` and ``sig:device:<hash>``: sets of the accounts that joined from
  that address block, or from that device;
- ``sig:sizes``: zset ``block:<block>`` / ``device:<hash>`` -> how many accounts, the
  operators' list of clusters (the largest first);
- ``sig:moved``: hash user -> the cluster they were moved to the back of the line for
  (``block:...``, ``device:...``, ``card:...``), once each.

The card each account paid with is on record in PostgreSQL (``queue_signal_cards``,
written by the booking worker at confirm: :mod:`waitingroom.queue.signals_cards`).

A move to the back of the line takes the fan from wherever they wait (the line, or the
pre-queue before the draw) to a FIFO place after every place handed out so far (``last``,
as PLACE hands them out): behind everyone who joined before, and, before the draw, behind
the whole pre-queue (drawn places are below 0). A moved pre-queue fan's abandonment clock
starts at on-sale, as a drawn fan's does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.typing import EncodableT

from ticketing.config import Settings
from ticketing.redis_connect import RedisClient
from waitingroom.queue.scripts import _CLOCK as CLOCK
from waitingroom.queue.signals_rules import ClusterRule
from waitingroom.queue.store_keys import QueueKeys, text

# Accounts of each cluster the operators' list shows (a sample: a cluster may be large).
SAMPLE = 20
# How long a process trusts what it read of an event's rule (the join reads it afresh).
RULE_CACHE_SECONDS = 1.0

_KEYS = ("sig:sizes", "sig:moved", "config", "waiting", "pre", "seen", "state")

# KEYS 1-7 as _KEYS; ARGV[1] on_sale_ms. move(user, cluster) -> 1 if moved.
_MOVE_FN = """
local sizes, moved, config, waiting, pre, seen, state =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local on_sale_ms = tonumber(ARGV[1])
local function move(user, cluster)
  if redis.call('HEXISTS', moved, user) == 1 then return 0 end
  local in_pre = false
  if not redis.call('ZSCORE', waiting, user) then
    if not redis.call('ZSCORE', pre, user) then return 0 end
    in_pre = true
  end
  local score = math.max(now_us, tonumber(redis.call('HGET', state, 'last') or '0') + 1)
  redis.call('HSET', state, 'last', fmt(score))
  if in_pre then redis.call('ZREM', pre, user) end
  redis.call('ZADD', waiting, fmt(score), user)
  redis.call('ZADD', seen, math.max(now_ms, on_sale_ms), user)
  redis.call('HSET', moved, user, cluster)
  return 1
end
local function rule_in_force(default_k)
  local c = redis.call('HMGET', config, 'cluster_rule', 'cluster_threshold')
  return c[1] or 'off', tonumber(c[2] or default_k)
end
"""

# A join's signals: the fan's account added to its address block's and device's sets.
# Under back_of_line, a set that this join took past K has every account in it moved (the
# joining fan too, if already in line; a fan placed by this join is moved by MOVE after).
# KEYS: _KEYS, then the fan's signal sets  ARGV: on_sale_ms, user, default K, the fan's
# card cluster ('' or card:<fingerprint>), then the sets' names (block:..., device:...)
# -> {rule, K, the cluster that flags the fan ('' if none), why they were moved ('')}
SIGNAL_JOIN = (
    CLOCK
    + _MOVE_FN
    + """
local user = ARGV[2]
local rule, k = rule_in_force(ARGV[3])
local flagged = ''
for i = 8, #KEYS do
  local name = ARGV[i - 3]
  local added = redis.call('SADD', KEYS[i], user)
  local n = redis.call('SCARD', KEYS[i])
  -- Counted up as the gateway counts its joins' accounts (deploy/lua/queue_join.lua's
  -- RECORD): each account once, whichever recorded it.
  if added == 1 then redis.call('ZINCRBY', sizes, 1, name) end
  if n > k then
    if flagged == '' then flagged = name end
    if rule == 'back_of_line' and added == 1 and n == k + 1 then
      for _, member in ipairs(redis.call('SMEMBERS', KEYS[i])) do move(member, name) end
    end
  end
end
if flagged == '' then flagged = ARGV[4] end
return {rule, k, flagged, redis.call('HGET', moved, user) or ''}
"""
)

# KEYS: _KEYS  ARGV: on_sale_ms, then user, cluster pairs -> how many were moved
MOVE = (
    CLOCK
    + _MOVE_FN
    + """
local n = 0
for i = 2, #ARGV, 2 do n = n + move(ARGV[i], ARGV[i + 1]) end
return n
"""
)

# Every account of every cluster over K (and the card clusters' accounts, named here)
# moved, as the rule back_of_line does once an operator sets it or lowers K.
# KEYS: _KEYS  ARGV: on_sale_ms, default K, the sets' key prefix, then user, cluster pairs
# -> how many were moved
SWEEP = (
    CLOCK
    + _MOVE_FN
    + """
local _, k = rule_in_force(ARGV[2])
local n = 0
for _, name in ipairs(redis.call('ZRANGEBYSCORE', sizes, '(' .. k, '+inf')) do
  for _, member in ipairs(redis.call('SMEMBERS', ARGV[3] .. name)) do
    n = n + move(member, name)
  end
end
for i = 4, #ARGV, 2 do n = n + move(ARGV[i], ARGV[i + 1]) end
return n
"""
)


@dataclass(frozen=True, slots=True)
class JoinSignals:
    """What a join's signals found: the rule in force, the cluster that flags the fan
    (``block:...``, ``device:...``, ``card:...``; "" when none does) and why they were
    moved to the back of the line, if they were ("")."""

    rule: ClusterRule
    flagged: str
    moved: str

    @property
    def harder(self) -> bool:
        return self.rule.rule == "harder_challenge" and bool(self.flagged)

    @property
    def to_move(self) -> bool:
        return self.rule.rule == "back_of_line" and bool(self.flagged) and not self.moved


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str  # block:<block> | device:<hash> | card:<fingerprint>
    accounts: int
    sample: list[str]


class SignalStore(QueueKeys):
    def __init__(self, redis: RedisClient, settings: Settings) -> None:
        super().__init__(redis, settings)
        self._join = redis.register_script(SIGNAL_JOIN)
        self._move = redis.register_script(MOVE)
        self._sweep = redis.register_script(SWEEP)
        self._rules: dict[int, tuple[float, ClusterRule, bool]] = {}

    def _keys(self, event_id: int) -> list[str]:
        return self.keys(event_id, *_KEYS)

    async def record_join(
        self,
        event_id: int,
        user_id: str,
        signals: Sequence[str],
        card_cluster: str,
        on_sale_ms: int,
        default_threshold: int,
    ) -> JoinSignals:
        """Record the fan's ``signals`` (``block:...``, ``device:...``) for the event and
        answer what they found."""
        keys = self._keys(event_id) + [self.key(event_id, "sig:" + s) for s in signals]
        args: list[EncodableT] = [on_sale_ms, user_id, default_threshold, card_cluster]
        rule, k, flagged, moved = await self._join(keys=keys, args=[*args, *signals])
        return JoinSignals(ClusterRule.from_config(text(rule), int(k)), text(flagged), text(moved))

    async def to_back(
        self, event_id: int, on_sale_ms: int, moves: Iterable[tuple[str, str]]
    ) -> int:
        """Move each (user, cluster) to the back of the line, unless moved before or not
        in line; how many were."""
        self._rules.pop(event_id, None)  # this process's statuses see the move at once
        args: list[EncodableT] = [on_sale_ms]
        for user, cluster in moves:
            args += [user, cluster]
        return int(await self._move(keys=self._keys(event_id), args=args))

    async def sweep(
        self,
        event_id: int,
        on_sale_ms: int,
        default_threshold: int,
        card_moves: Iterable[tuple[str, str]],
    ) -> int:
        args: list[EncodableT] = [on_sale_ms, default_threshold, self.key(event_id, "sig:")]
        for user, cluster in card_moves:
            args += [user, cluster]
        return int(await self._sweep(keys=self._keys(event_id), args=args))

    async def moved(self, event_id: int, user_id: str) -> str | None:
        why = await self.redis.hget(self.key(event_id, "sig:moved"), user_id)
        return None if why is None else text(why)

    async def rule(
        self, event_id: int, default_threshold: int, *, fresh: bool = False
    ) -> tuple[ClusterRule, bool]:
        """The event's rule and whether anyone was moved in it, as read within the last
        second (a status reads it; the join reads it afresh in its script), or now with
        ``fresh``."""
        now = time.monotonic()
        cached = self._rules.get(event_id)
        if not fresh and cached is not None and now - cached[0] < RULE_CACHE_SECONDS:
            return cached[1], cached[2]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(self.key(event_id, "config"), ["cluster_rule", "cluster_threshold"])
        pipe.exists(self.key(event_id, "sig:moved"))
        (rule, k), any_moved = await pipe.execute()
        read = ClusterRule.from_config(
            None if rule is None else text(rule), default_threshold if k is None else text(k)
        )
        self._rules[event_id] = (now, read, bool(any_moved))
        return read, bool(any_moved)

    async def clusters(self, event_id: int, threshold: int, most: int) -> list[Cluster]:
        """The address blocks and devices with more than ``threshold`` accounts, the
        largest first (at most ``most``), each with a sample of its accounts."""
        names: list[Any] = await self.redis.zrevrangebyscore(
            self.key(event_id, "sig:sizes"),
            "+inf",
            f"({threshold}",
            start=0,
            num=most,
            withscores=True,
        )
        if not names:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for name, _ in names:
            pipe.srandmember(self.key(event_id, "sig:" + text(name)), SAMPLE)
        samples = await pipe.execute()
        return [
            Cluster(text(name), int(size), sorted(text(u) for u in sample))
            for (name, size), sample in zip(names, samples, strict=True)
        ]

    async def moved_count(self, event_id: int) -> int:
        return int(await self.redis.hlen(self.key(event_id, "sig:moved")))
