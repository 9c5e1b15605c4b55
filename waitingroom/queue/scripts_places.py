"""Where fans stand in line, in Lua: a join or a status read (PLACE, which the gateway
also runs, by its SHA: deploy/lua/queue_join.lua), leaving (LEAVE), and the places of
many fans at once for the push rounds (POSITIONS).

These are the scripts' bodies: :mod:`waitingroom.queue.scripts` puts in front of each the
preludes it needs (``now_us``, ``now_ms`` and ``fmt`` from the clock); it lists the keys.
"""

from __future__ import annotations

# Several fans' joins and status reads in one call (the front door gathers the ones that
# arrive together; see QueueStore.place), each decided exactly as it would be alone.
# KEYS: waiting pre active seen state departed, then per request its fan's and its
#       address's rate-limit keys (GCRA: the "theoretical arrival time" in ms) and the
#       used-challenge key of the solved challenge it carries (when it carries none, a key
#       named already, such as state: unread)
# ARGV: per-fan interval and tolerance (ms), per-address interval and tolerance (ms), then
#       per request: user, mode (join|status), on_sale_ms, restore_where (''|waiting|pre),
#       restore_place, restore_epoch, limited (1: count it against both limits), and how
#       long (s) to keep its challenge recorded as used (0: it carries none)
# -> per request {kind, place_or_expiry, rank, pre_ahead, epoch, new, drawn}; kind
#    'limited' (place_or_expiry: ms until allowed) when a limit refused it, unplaced;
#    'used' when its challenge was used before, unplaced and uncounted. A challenge is
#    recorded as used (store_challenge.py's record, in the same step as the place: one
#    round trip for the gateway's join) unless the request was limited or the fan is
#    admitted, whose join is the waitingroom's to answer, the challenge still theirs.
PLACE_FIELDS = 7
PLACE_BODY = """
local LOST_JOIN_US = 3600 * 1000000  -- how long `departed` remembers (the tick trims it)
local waiting, pre, active, seen, state, departed =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local user_interval, user_tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local ip_interval, ip_tolerance = tonumber(ARGV[3]), tonumber(ARGV[4])
local drawn = redis.call('HGET', state, 'drawn') == '1'
local sold = redis.call('HGET', state, 'sold_out') == '1'
local last = tonumber(redis.call('HGET', state, 'last') or '0')
local last_before = last
local epoch = redis.call('HGET', state, 'epoch')

-- 0 when allowed (and counted), else ms until it would be
local function wait_ms(key, interval, tolerance)
  local tat = tonumber(redis.call('GET', key) or now_ms)
  if tat < now_ms then tat = now_ms end
  local allow_at = tat + interval - tolerance
  if allow_at > now_ms then return allow_at - now_ms end
  redis.call('SET', key, string.format('%.3f', tat + interval), 'PX',
             math.ceil(tat + interval - now_ms) + 1000)
  return 0
end

local function ahead_of_pre()
  if drawn then return 0 end
  return redis.call('ZCARD', pre)
end

local function place(user, mode, on_sale_ms, where, score, ticket_epoch)
  if not epoch and mode == 'join' then
    epoch = fmt(now_us)
    redis.call('HSET', state, 'epoch', epoch)
  end
  local e = epoch or ''
  local expiry = redis.call('ZSCORE', active, user)
  if expiry then
    if tonumber(expiry) > now_ms then
      return {'admitted', expiry, 0, 0, e, 0, 1}
    end
    redis.call('ZREM', active, user)  -- its session is over; the tick frees the slot too
  end
  local at = redis.call('ZSCORE', waiting, user)
  if at then
    redis.call('ZADD', seen, 'XX', now_ms, user)
    return {sold and 'sold_out' or 'waiting', at, redis.call('ZRANK', waiting, user),
            ahead_of_pre(), e, 0, drawn and 1 or 0}
  end
  at = redis.call('ZSCORE', pre, user)
  if at then
    return {'pre', at, -1, 0, e, 0, 0}
  end
  if sold then return {'sold_out', 0, -1, 0, e, 0, drawn and 1 or 0} end
  if mode ~= 'join' then return {'none', 0, -1, 0, e, 0, drawn and 1 or 0} end
  -- A signed queue ticket restores a place this queue no longer has when the queue lost
  -- state (a new epoch, or places handed out later than `last` are gone), or when a
  -- failover lost the join itself: a place of this state from the last hour, of a fan who
  -- has not departed since (a primary killed a moment after a join: the promoted replica
  -- never had it, and later joins moved `last` on). Otherwise the fan left or was
  -- dropped, and joins at the back like anyone else.
  local restoring = (where == 'waiting' or where == 'pre')
    and (ticket_epoch ~= e or (score > 0 and score > last))
  if not restoring and where == 'waiting' and ticket_epoch == e
    and score > now_us - LOST_JOIN_US and not redis.call('ZSCORE', departed, user) then
    restoring = true
  end
  local key
  if restoring then
    if where == 'pre' and drawn then
      key, score = waiting, 0  -- behind the drawn pre-queue, ahead of later arrivals
    else
      key = (where == 'pre') and pre or waiting
    end
    if score > last then last = score end
  else
    score = math.max(now_us, last + 1)
    last = score
    key = (not drawn and now_ms < on_sale_ms) and pre or waiting
  end
  redis.call('ZADD', key, fmt(score), user)
  if key == pre then
    return {'pre', fmt(score), -1, 0, e, restoring and 2 or 1, 0}
  end
  -- Pre-queue fans are exempt from abandonment until the draw (they may join hours early).
  redis.call('ZADD', seen, now_ms, user)
  return {'waiting', fmt(score), redis.call('ZRANK', waiting, user), ahead_of_pre(), e,
          restoring and 2 or 1, drawn and 1 or 0}
end

local out = {}
local n = (#ARGV - 4) / 8
for i = 0, n - 1 do
  local a = 4 + i * 8
  local key_used, used_ttl = KEYS[9 + i * 3], tonumber(ARGV[a + 8])
  local result
  local wait = 0
  if used_ttl > 0 and redis.call('EXISTS', key_used) == 1 then
    result = {'used', 0, -1, 0, epoch or '', 0, 0}
  else
    if ARGV[a + 7] == '1' then
      wait = wait_ms(KEYS[7 + i * 3], user_interval, user_tolerance)
      if wait == 0 then wait = wait_ms(KEYS[8 + i * 3], ip_interval, ip_tolerance) end
    end
    if wait > 0 then
      result = {'limited', math.ceil(wait), -1, 0, epoch or '', 0, 0}
    else
      result = place(ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), ARGV[a + 4],
                     tonumber(ARGV[a + 5]), ARGV[a + 6])
      if used_ttl > 0 and result[1] ~= 'admitted' then
        redis.call('SET', key_used, '1', 'EX', used_ttl)
      end
    end
  end
  for j = 1, 7 do out[#out + 1] = result[j] end
end
if last ~= last_before then redis.call('HSET', state, 'last', fmt(last)) end
return out
"""

# KEYS: waiting pre active seen unclaimed departed  ARGV: user
# -> 'waiting' | 'pre' | 'admitted' | ''
LEAVE_BODY = """
local user = ARGV[1]
local was = ''
if redis.call('ZREM', KEYS[3], user) == 1 then
  redis.call('ZREM', KEYS[5], user)
  was = 'admitted'
elseif redis.call('ZREM', KEYS[1], user) == 1 then
  redis.call('ZREM', KEYS[4], user)
  was = 'waiting'
elseif redis.call('ZREM', KEYS[2], user) == 1 then
  was = 'pre'
end
if was ~= '' then redis.call('ZADD', KEYS[6], now_ms, user) end
return was
"""

# KEYS: waiting pre active state departed  ARGV: users...
# -> {now_ms, waiting count, pre_ahead, epoch, drawn, then per user: code, rank, place}
#    code 0 waiting, 1 pre-queue, 2 admitted (place = session expiry ms), 3 not queued
#    (departed: admitted, dropped or left), 4 not queued and never departed: the queue
#    lost the fan's place (a failover lost the join), which the fan's ticket restores
POSITIONS_BODY = """
local waiting, pre, active, state, departed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local s = redis.call('HMGET', state, 'drawn', 'epoch')
local pre_ahead = 0
if s[1] ~= '1' then pre_ahead = redis.call('ZCARD', pre) end
local out = {now_ms, redis.call('ZCARD', waiting), pre_ahead, s[2] or '', s[1] == '1' and 1 or 0}
local function put(code, rank, place)
  out[#out + 1] = code
  out[#out + 1] = rank
  out[#out + 1] = place
end
for i = 1, #ARGV do
  local user = ARGV[i]
  local rank = redis.call('ZRANK', waiting, user)
  if rank then
    put(0, rank, redis.call('ZSCORE', waiting, user))
  else
    local expiry = redis.call('ZSCORE', active, user)
    local place = redis.call('ZSCORE', pre, user)
    if expiry and tonumber(expiry) > now_ms then
      put(2, 0, expiry)
    elseif place then
      put(1, -1, place)
    elseif redis.call('ZSCORE', departed, user) then
      put(3, -1, 0)
    else
      put(4, -1, 0)
    end
  end
end
return out
"""

# KEYS: waiting seen  ARGV: users...  -> how many of them are in line (and now count as seen)
# The presence loop (waitingroom/queue/hub_rounds.py): fans with an open socket are seen,
# however long the push rounds take.
TOUCH_BODY = """
local touched = {}
for i = 1, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    touched[#touched + 1] = now_ms
    touched[#touched + 1] = ARGV[i]
  end
end
for i = 1, #touched, 1000 do
  redis.call('ZADD', KEYS[2], 'XX', unpack(touched, i, math.min(i + 999, #touched)))
end
return #touched / 2
"""
