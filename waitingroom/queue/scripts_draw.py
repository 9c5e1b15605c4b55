"""The fair start, in Lua: committing to the pre-queue's seed (COMMIT), the draw at
on-sale (DRAW), and the draw again from its record after Redis lost the queue (REDRAW).

These are the scripts' bodies: :mod:`waitingroom.queue.scripts` puts in front of each the
preludes it needs (``now_us``, ``now_ms`` and ``fmt`` from the clock); it lists the keys.
"""

from __future__ import annotations

# KEYS: seed fair  ARGV: seed, commitment -> commitment in force
COMMIT_BODY = """
local existing = redis.call('HGET', KEYS[2], 'commitment')
if existing and redis.call('EXISTS', KEYS[1]) == 1 then return existing end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'commitment', ARGV[2], 'committed_at', fmt(now_ms))
return ARGV[2]
"""

# KEYS: waiting pre seen state fair drawn seed
# ARGV: on_sale_ms, seed, then user, ref pairs in drawn order
# -> 'ok' | 'done' (already drawn) | 'early' | 'changed' (the pre-queue moved; draw again)
DRAW_BODY = """
local waiting, pre, seen, state, fair, drawn = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if redis.call('HGET', state, 'drawn') == '1' then return 'done' end
if now_ms < tonumber(ARGV[1]) then return 'early' end
if redis.call('GET', KEYS[7]) ~= ARGV[2] then return 'changed' end
local n = (#ARGV - 2) / 2
if redis.call('ZCARD', pre) ~= n then return 'changed' end
for i = 3, #ARGV, 2 do
  if not redis.call('ZSCORE', pre, ARGV[i]) then return 'changed' end
end
local place = -n
for i = 3, #ARGV, 2 do
  redis.call('ZADD', waiting, place, ARGV[i])
  -- Everyone drawn gets the abandonment grace from on-sale, however early they joined.
  redis.call('ZADD', seen, now_ms, ARGV[i])
  redis.call('RPUSH', drawn, ARGV[i + 1])
  place = place + 1
end
redis.call('DEL', pre)
redis.call('HSET', state, 'drawn', '1')
redis.call('HSET', fair, 'seed', ARGV[2], 'revealed_at', fmt(now_ms), 'members', n)
return 'ok'
"""

# The draw again, from its record, after Redis lost the queue (waitingroom.queue.draw):
# every fan back in the pre-queue goes to the place the recorded draw gave them (-N for the
# first of N drawn ... -1), 0 (behind them) if the record does not have them.
# It also holds admission for REGROUP_SECONDS (TICK reads ``regroup_until``): the fans who
# were waiting come back with their queue tickets over a few seconds (a socket hears "lost"
# within a round, a polling page at its next poll), and one admitted before the fan ahead of
# them is back passes that fan (bench/chaos.py counted 5,462 such pairs of 989,121).
# KEYS: waiting pre seen state  ARGV: on_sale_ms, then user, place pairs
# -> 'ok' | 'done' (drawn already) | 'early' | 'changed' (the pre-queue moved; again)
REGROUP_SECONDS = 5
REDRAW_BODY = """
local waiting, pre, seen, state = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('HGET', state, 'drawn') == '1' then return 'done' end
if now_ms < tonumber(ARGV[1]) then return 'early' end
if redis.call('ZCARD', pre) ~= (#ARGV - 1) / 2 then return 'changed' end
for i = 2, #ARGV, 2 do
  if not redis.call('ZSCORE', pre, ARGV[i]) then return 'changed' end
end
for i = 2, #ARGV, 2 do
  redis.call('ZADD', waiting, ARGV[i + 1], ARGV[i])
  redis.call('ZADD', seen, now_ms, ARGV[i])
end
redis.call('DEL', pre)
redis.call('HSET', state, 'drawn', '1', 'regroup_until', fmt(now_ms + REGROUP_MS))
return 'ok'
""".replace("REGROUP_MS", str(REGROUP_SECONDS * 1000))
