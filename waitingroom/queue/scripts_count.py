"""Counting what is left to sell, in Lua: a count begins (COUNT_BEGIN) before it reads
PostgreSQL and is applied (COUNT_APPLY) after, unless a later one is in already.

These are the scripts' bodies: :mod:`waitingroom.queue.scripts` puts in front of each the
preludes it needs (``now_us``, ``now_ms`` and ``fmt`` from the clock); it lists the keys.
"""

from __future__ import annotations

# Before a count reads PostgreSQL: when (Redis TIME, us) and the seats held through the
# front door so far. KEYS: state  -> {now_us, hold_seats}
COUNT_BEGIN_BODY = """
return {fmt(now_us), redis.call('HGET', KEYS[1], 'hold_seats') or '0'}
"""

# A count's result, unless a count begun later is in already (counts run in any process,
# and the one after a confirm may finish before the once-a-second one begun earlier).
# Sold out (nothing available, nothing held): every admitted fan's session ends, and they
# go back to the front of the line in the order they were admitted, so that if seats come
# back (a refund, a hold released) they are served first again.
# KEYS: state waiting active unclaimed seen
# ARGV: began_us, seat_base, available, held
# -> {'stale'|'sold_out'|'on_sale'|'' (no change), users moved back to the line}
COUNT_APPLY_BODY = """
local state, waiting, active, unclaimed, seen = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local began = tonumber(ARGV[1])
if began < tonumber(redis.call('HGET', state, 'counted_us') or '0') then
  return {'stale', 0}
end
local was = redis.call('HGET', state, 'sold_out') == '1'
local sold = tonumber(ARGV[3]) == 0 and tonumber(ARGV[4]) == 0
redis.call('HSET', state, 'counted_us', ARGV[1], 'seat_base', ARGV[2], 'available', ARGV[3],
           'held', ARGV[4], 'sold_out', sold and '1' or '0')
local moved = 0
if sold then
  local users = redis.call('ZRANGE', active, 0, -1)  -- by session end: admission order
  moved = #users
  if moved > 0 then
    local first = redis.call('ZRANGE', waiting, 0, 0, 'WITHSCORES')
    local front = tonumber(first[2] or redis.call('HGET', state, 'last') or fmt(now_us)) or 0
    for i, user in ipairs(users) do
      redis.call('ZADD', waiting, fmt(front - (moved - i + 1)), user)
      redis.call('ZADD', seen, now_ms, user)
    end
    redis.call('DEL', active, unclaimed)
  end
end
local change = ''
if sold ~= was then change = sold and 'sold_out' or 'on_sale' end
return {change, moved}
"""
